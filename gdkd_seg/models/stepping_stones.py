"""Stepping stones of block-wise logit distillation (Yu et al., arXiv 2411.01547).

Stepping stone ``i`` is a hybrid network: the student's stages ``1..i``, a connector ``C_i`` (1x1 conv + BN
from the student's to the teacher's channels, resized to the teacher's stage-``i`` resolution when the
strides differ), then the teacher's stages ``i+1..n`` and the teacher's decode head. Its logits have the
teacher's shape. The teacher's weights stay frozen (no ``requires_grad``, eval-mode BN), but the stone's
forward runs with autograd on, so its losses reach ``C_i`` and the student's stages ``1..i`` through the
teacher's layers.

The stones are a distiller component: they reuse the stage outputs of the student's ordinary training
forward that the distiller records, so each stone costs one partial teacher forward and backward and no
extra student forward. Their connectors live in the distiller (``components.<name>.connectors``), never in
``student``: exported students do not contain them. :class:`~gdkd_seg.losses.BlockwiseKDLoss` reads their
logits as an extra input.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from mmseg.registry import MODELS
from .connectors import FeatureProjector


def backbone_stage_names(segmentor: nn.Module) -> List[str]:
    """Module names of the backbone's stages in forward order, e.g. ``['backbone.layer1', ...]``.

    Known for backbones that list their stages in ``res_layers`` (MMSeg's ResNet, ResNetV1c/d, ResNeXt);
    other backbones need ``student_stages`` / ``teacher_stages`` given explicitly.
    """
    names = getattr(getattr(segmentor, 'backbone', None), 'res_layers', None)
    if not names:
        raise ValueError(f'Cannot tell the stages of a {type(getattr(segmentor, "backbone", segmentor)).__name__} '
                         'backbone: give student_stages / teacher_stages (module names run in sequence, '
                         "e.g. ['backbone.layer1', 'backbone.layer2', ...]) in the SteppingStones config")
    return [f'backbone.{name}' for name in names]


def stage_out_channels(stage: nn.Module, name: str) -> int:
    """Output channels of a convolutional stage: those of its last convolution (in registration order)."""
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f'{name} has no convolution to read its output channels from: give '
                         'student_channels / teacher_channels in the SteppingStones config')
    return convs[-1].out_channels


@MODELS.register_module()
class SteppingStones(nn.Module):
    """The hybrid student-teacher networks of block-wise logit distillation, a distiller component.

    Built by the distiller with the two networks (``student=``, ``teacher=``); it keeps the teacher's
    stages and head outside its module tree, so the teacher never becomes trainable or part of a
    checkpoint. It reads the student's and the teacher's stage outputs that the distiller records
    (:attr:`student_records`, :attr:`teacher_records`; of the teacher only their sizes) and returns
    ``[(w_i, logits_i)]``, ``w_i = 1 / 2^(n - i)`` (n = the teacher's stage count), logits shaped as the
    teacher's decode-head logits.

    Args:
        student, teacher (nn.Module): the segmentors (given by the distiller).
        stones (Sequence[int]): which stones to build, 1-based stage indices ``i`` with
            ``1 <= i <= n`` (``i = n`` feeds the connector straight into the teacher's decode head). Each
            costs a partial teacher forward and backward per iteration.
        norm_cfg (dict | None): normalisation after each connector's 1x1 conv (``None``: none).
        student_stages, teacher_stages (list[str] | None): module names of the stages, run in sequence
            (default: the backbone's ``res_layers``). The backbone's ``out_indices`` index these stages.
        student_channels, teacher_channels (list[int] | None): output channels per stage (default: read
            from each stage's last convolution).
        align_corners (bool): of the bilinear resize of connector outputs to the teacher's stage size.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, stones: Sequence[int] = (1, 2, 3),
                 norm_cfg: Optional[dict] = dict(type='BN'), student_stages: Optional[List[str]] = None,
                 teacher_stages: Optional[List[str]] = None, student_channels: Optional[List[int]] = None,
                 teacher_channels: Optional[List[int]] = None, align_corners: bool = False):
        super().__init__()
        stones = list(stones)
        if not stones or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in stones):
            raise ValueError(f'stones must be a non-empty list of stage indices >= 1, got {stones!r}')
        if len(set(stones)) != len(stones):
            raise ValueError(f'stones must not repeat a stage, got {stones!r}')
        self.stones = sorted(stones)
        self.align_corners = align_corners

        student_stages = student_stages or backbone_stage_names(student)
        teacher_stages = teacher_stages or backbone_stage_names(teacher)
        n = len(teacher_stages)
        too_deep = [i for i in self.stones if i > min(n, len(student_stages))]
        if too_deep:
            raise ValueError(f'stones {too_deep} do not exist: the student has {len(student_stages)} stages and '
                             f'the teacher {n}, so stones must lie in 1..{min(n, len(student_stages))}')
        if getattr(teacher, 'with_neck', False):
            raise ValueError('SteppingStones run the teacher\'s stages straight into its decode head, '
                             'so a teacher with a neck is not supported')
        t_modules = dict(teacher.named_modules())
        s_modules = dict(student.named_modules())
        for who, names, modules in (('student', student_stages, s_modules), ('teacher', teacher_stages, t_modules)):
            missing = [name for name in names if name not in modules]
            if missing:
                raise ValueError(f'the {who} has no stage module(s) {missing}')
        out_indices = list(getattr(teacher.backbone, 'out_indices', range(n)))
        self._check_head_inputs(teacher.decode_head, out_indices)

        s_channels = student_channels or [stage_out_channels(s_modules[m], m) for m in student_stages]
        t_channels = teacher_channels or [stage_out_channels(t_modules[m], m) for m in teacher_stages]
        self.connectors = nn.ModuleDict({str(i): FeatureProjector(s_channels[i - 1], t_channels[i - 1], norm_cfg)
                                         for i in self.stones})
        # Plain attributes set with object.__setattr__: outside this module's tree (no parameters, no
        # state_dict, no .train()), exactly like the distiller's FrozenTeacher.
        object.__setattr__(self, '_teacher', teacher)
        object.__setattr__(self, '_teacher_stages', [t_modules[m] for m in teacher_stages])
        self._teacher_out_indices = out_indices
        self.num_teacher_stages = n
        self.student_records = [student_stages[i - 1] for i in self.stones]
        self.teacher_records = [teacher_stages[i - 1] for i in self.stones]

    def _check_head_inputs(self, head: nn.Module, out_indices: List[int]) -> None:
        in_index = getattr(head, 'in_index', 0)
        positions = in_index if isinstance(in_index, (list, tuple)) else [in_index]
        needed = [out_indices[p] for p in positions]  # 0-based stages the head reads
        shallow = [i for i in self.stones if any(stage < i - 1 for stage in needed)]
        if shallow:
            raise ValueError(f'the teacher\'s decode head reads stages {[s + 1 for s in needed]}, earlier than '
                             f'stones {shallow} start in the teacher: use deeper stones')

    @property
    def stone_weights(self) -> Dict[int, float]:
        """``1 / 2^(n - i)`` per stone ``i`` (n = teacher stages): the deepest possible stone weighs 1."""
        return {i: 0.5 ** (self.num_teacher_stages - i) for i in self.stones}

    def forward(self, student_records, teacher_records) -> List[Tuple[float, Tensor]]:
        """``[(w_i, logits_i)]`` for the stones in order, from this step's recorded stage outputs."""
        weights = self.stone_weights
        out = []
        for i, s_name, t_name in zip(self.stones, self.student_records, self.teacher_records):
            x = self.connectors[str(i)](student_records[s_name])
            size = tuple(teacher_records[t_name].shape[-2:])
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode='bilinear', align_corners=self.align_corners)
            stage_outputs = {i - 1: x}
            for j in range(i, self.num_teacher_stages):
                x = self._teacher_stages[j](x)
                stage_outputs[j] = x
            # Stages before i are never read (checked in __init__); the head indexes this list.
            head_inputs = [stage_outputs.get(j) for j in self._teacher_out_indices]
            out.append((weights[i], self._teacher.decode_head(head_inputs)))
        return out

    def extra_repr(self) -> str:
        return f'stones={self.stones}'
