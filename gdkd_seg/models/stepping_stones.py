"""Stepping stones of block-wise logit distillation (Yu et al., arXiv 2411.01547).

Stepping stone ``i`` is a hybrid network: the student's stages ``1..i``, a connector ``C_i`` (1x1 conv + BN
from the student's to the teacher's channels, resized to the teacher's stage-``i`` resolution when the
strides differ), then the teacher's stages ``i+1..n`` and the teacher's decode head. Its logits have the
teacher's shape. The teacher's weights stay frozen (no ``requires_grad``, eval-mode BN), but the stone's
forward runs with autograd on, so its losses reach ``C_i`` and the student's stages ``1..i`` through the
teacher's layers.

The stones reuse the stage outputs of the student's ordinary training forward (recorded by hooks), so
each stone costs one partial teacher forward and backward and no extra student forward. Connectors live
in the distiller (under ``distill_losses``), never in ``student``: exported students do not contain them.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from mmseg.registry import MODELS
from .connectors import FeatureProjector
from .recorders import ModuleOutputRecorder


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
    """The hybrid student-teacher networks of block-wise logit distillation.

    Used inside :class:`~gdkd_seg.losses.BlockwiseKDLoss`; the distiller hands it the two networks through
    :meth:`bind_models` (it keeps them outside its module tree, so the teacher never becomes trainable or
    part of a checkpoint).

    Args:
        stones (Sequence[int]): which stones to build, 1-based stage indices ``i`` with
            ``1 <= i <= n`` (n = the teacher's stage count; ``i = n`` feeds the connector straight into the
            teacher's decode head). Each costs a partial teacher forward and backward per iteration.
        norm_cfg (dict | None): normalisation after each connector's 1x1 conv (``None``: none).
        student_stages, teacher_stages (list[str] | None): module names of the stages, run in sequence
            (default: the backbone's ``res_layers``). The backbone's ``out_indices`` index these stages.
        student_channels, teacher_channels (list[int] | None): output channels per stage (default: read
            from each stage's last convolution).
        align_corners (bool): of the bilinear resize of connector outputs to the teacher's stage size.
    """

    def __init__(self, stones: Sequence[int] = (1, 2, 3), norm_cfg: Optional[dict] = dict(type='BN'),
                 student_stages: Optional[List[str]] = None, teacher_stages: Optional[List[str]] = None,
                 student_channels: Optional[List[int]] = None, teacher_channels: Optional[List[int]] = None,
                 align_corners: bool = False):
        super().__init__()
        stones = list(stones)
        if not stones or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in stones):
            raise ValueError(f'stones must be a non-empty list of stage indices >= 1, got {stones!r}')
        if len(set(stones)) != len(stones):
            raise ValueError(f'stones must not repeat a stage, got {stones!r}')
        self.stones = sorted(stones)
        self.norm_cfg = norm_cfg
        self.stage_names = dict(student=student_stages, teacher=teacher_stages)
        self.channels = dict(student=student_channels, teacher=teacher_channels)
        self.align_corners = align_corners
        self.connectors = nn.ModuleDict()  # built by bind_models, once the channels are known
        self.num_teacher_stages = None
        self._bound = False

    # -- binding ---------------------------------------------------------------------------------------

    def bind_models(self, student: nn.Module, teacher: nn.Module) -> None:
        """Record the student's stage outputs, reach the teacher's stages and head, build the connectors.

        Called once by the distiller when it is built (before the optimizer exists).
        """
        if self._bound:
            raise RuntimeError('SteppingStones are already bound to a student and a teacher')
        student_stages = self.stage_names['student'] or backbone_stage_names(student)
        teacher_stages = self.stage_names['teacher'] or backbone_stage_names(teacher)
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

        s_channels = self.channels['student'] or [stage_out_channels(s_modules[m], m) for m in student_stages]
        t_channels = self.channels['teacher'] or [stage_out_channels(t_modules[m], m) for m in teacher_stages]
        for i in self.stones:
            self.connectors[str(i)] = FeatureProjector(s_channels[i - 1], t_channels[i - 1], self.norm_cfg)

        # Plain attributes set with object.__setattr__: outside this module's tree (no parameters, no
        # state_dict, no .train()), exactly like the distiller's FrozenTeacher.
        object.__setattr__(self, '_teacher', teacher)
        object.__setattr__(self, '_teacher_stages', [t_modules[m] for m in teacher_stages])
        self._teacher_out_indices = out_indices
        self._student_stage_names = student_stages
        self.student_recorder = ModuleOutputRecorder(student, [student_stages[i - 1] for i in self.stones])
        # The teacher's own (no-grad) forward tells the resolution of each stage.
        self._teacher_sizes: Dict[int, Tuple[int, int]] = {}
        for j, stage in enumerate(self._teacher_stages):
            stage.register_forward_hook(self._size_hook(j))
        self.num_teacher_stages = n
        self._bound = True

    def _size_hook(self, index):
        def hook(module, args, output):
            self._teacher_sizes[index] = tuple(output.shape[-2:])
        return hook

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
        if self.num_teacher_stages is None:
            raise RuntimeError('SteppingStones are not bound to a student and a teacher yet')
        return {i: 0.5 ** (self.num_teacher_stages - i) for i in self.stones}

    # -- forward ---------------------------------------------------------------------------------------

    def forward(self) -> Dict[int, Tensor]:
        """Logits of each stone, ``{i: (N, C, h, w)}`` shaped as the teacher's decode-head logits.

        Uses the student stage outputs of the latest student forward and the stage sizes of the latest
        teacher forward (the distiller runs both before its distillation losses).
        """
        if not self._bound:
            raise RuntimeError('SteppingStones are not bound: build them through a distiller '
                               '(it calls bind_models), or call bind_models(student, teacher)')
        sizes = dict(self._teacher_sizes)  # the stones' own teacher runs below fire the same hooks
        logits = {}
        for i in self.stones:
            if i - 1 not in sizes:
                raise RuntimeError('run the teacher forward before the stepping stones: its stage sizes '
                                   'are not known yet')
            x = self.connectors[str(i)](self.student_recorder[self._student_stage_names[i - 1]])
            if tuple(x.shape[-2:]) != sizes[i - 1]:
                x = F.interpolate(x, size=sizes[i - 1], mode='bilinear', align_corners=self.align_corners)
            stage_outputs = {i - 1: x}
            for j in range(i, self.num_teacher_stages):
                x = self._teacher_stages[j](x)
                stage_outputs[j] = x
            # Stages before i are never read (checked in bind_models); the head indexes this list.
            head_inputs = [stage_outputs.get(j) for j in self._teacher_out_indices]
            logits[i] = self._teacher.decode_head(head_inputs)
        self.student_recorder.clear()
        return logits

    def extra_repr(self) -> str:
        return f'stones={self.stones}'
