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

The student need not be a ResNet: its stages may be outputs of its backbone, ``'backbone:0'`` ..
``'backbone:3'`` (a SegFormer's MixVisionTransformer, whose stages are not called as modules), found from the
backbone's ``out_indices`` when it has no ``res_layers``, with their channels read from one small forward at
construction. The teacher's stages must be modules that run in sequence (a ResNet's ``res_layers``): the
stones call them.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

from .connectors import FeatureProjector
from .recorders import ModuleOutputRecorder, parse_record_name

PROBE_SIZE = 64  # side of the zero image whose forward reads stage channels (a multiple of 32)


def backbone_stage_names(segmentor: nn.Module, outputs_allowed: bool = False) -> List[str]:
    """Names of the backbone's stages in forward order: the modules in its ``res_layers`` (MMSeg's ResNet,
    ResNetV1c/d, ResNeXt), e.g. ``['backbone.layer1', ...]``; else, with ``outputs_allowed``, the elements of
    its output, one per ``out_indices`` entry, e.g. ``['backbone:0', ..., 'backbone:3']``.

    Other backbones need ``student_stages`` / ``teacher_stages`` given explicitly.
    """
    backbone = getattr(segmentor, 'backbone', None)
    names = getattr(backbone, 'res_layers', None)
    if names:
        return [f'backbone.{name}' for name in names]
    out_indices = getattr(backbone, 'out_indices', None)
    if outputs_allowed and isinstance(out_indices, (list, tuple)) and len(out_indices) > 1:
        return [f'backbone:{j}' for j in range(len(out_indices))]
    kind = type(backbone if backbone is not None else segmentor).__name__
    if outputs_allowed:
        raise ValueError(
            f'Cannot tell the stages of a {kind} backbone (no res_layers, no out_indices): name them '
            "(SteppingStones: student_stages), as modules or as elements of the backbone's output such "
            "as 'backbone:0'"
        )
    raise ValueError(
        f'Cannot tell the stage modules of a {kind} backbone (no res_layers): name them, modules called '
        "in sequence such as ['backbone.layer1', 'backbone.layer2', ...] (SteppingStones: teacher_stages)"
    )


def stage_out_channels(stage: nn.Module, name: str) -> int:
    """Output channels of a convolutional stage: those of its last convolution (in registration order)."""
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f'{name} has no convolution to read its output channels from: give '
            'student_channels / teacher_channels in the SteppingStones config'
        )
    return convs[-1].out_channels


def probed_channels(segmentor: nn.Module, names: Sequence[str], who: str = 'student') -> List[int]:
    """Channels of the named outputs (module names or ``'module:index'``), from one forward of the
    segmentor's ``extract_feat`` on a ``PROBE_SIZE`` zero image: in eval mode and without gradients, so
    neither the weights nor the BN statistics change; the training flags are restored afterwards."""
    convs = [m for m in segmentor.backbone.modules() if isinstance(m, nn.Conv2d)]
    in_channels = convs[0].in_channels if convs else 3
    param = next(segmentor.parameters(), None)
    image = torch.zeros(1, in_channels, PROBE_SIZE, PROBE_SIZE, device=param.device if param is not None else None)
    recorder = ModuleOutputRecorder(segmentor, names)
    training = {m: m.training for m in segmentor.modules()}
    try:
        segmentor.eval()
        with torch.no_grad(), recorder.recording():
            segmentor.extract_feat(image)
        outputs = [recorder[name] for name in names]
    except Exception as err:
        raise ValueError(
            f'Could not read the channels of the {who} stages {list(names)} from a forward of a '
            f'{PROBE_SIZE}x{PROBE_SIZE} image ({err}): give {who}_channels in the SteppingStones '
            'config'
        ) from err
    finally:
        recorder.remove()
        for module, mode in training.items():
            module.training = mode
    bad = [name for name, out in zip(names, outputs) if not torch.is_tensor(out) or out.dim() != 4]
    if bad:
        raise ValueError(f'The {who} stages {bad} do not output (N, C, H, W) feature maps: name other stages')
    return [int(out.shape[1]) for out in outputs]


def stage_channels(segmentor: nn.Module, names: Sequence[str], who: str) -> List[int]:
    """Per stage: the last convolution's channels of a convolutional stage module; otherwise (outputs such
    as ``'backbone:3'``, modules without a convolution) channels probed by one small forward."""
    modules = dict(segmentor.named_modules())
    convolutional = [':' not in n and any(isinstance(m, nn.Conv2d) for m in modules[n].modules()) for n in names]
    if all(convolutional):
        return [stage_out_channels(modules[n], n) for n in names]
    return probed_channels(segmentor, names, who)


def _check_stones(stones) -> List[int]:
    stones = list(stones)
    if not stones or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in stones):
        raise ValueError(f'stones must be a non-empty list of stage indices >= 1, got {stones!r}')
    if len(set(stones)) != len(stones):
        raise ValueError(f'stones must not repeat a stage, got {stones!r}')
    return sorted(stones)


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
        student_stages, teacher_stages (list[str] | None): the stages in forward order (default: the
            backbone's ``res_layers``). The teacher's are modules the stones run in sequence, and its
            backbone's ``out_indices`` index them. The student's may also be elements of its backbone's output,
            ``'backbone:j'`` (default without ``res_layers``: one per ``out_indices`` entry).
        student_channels, teacher_channels (list[int] | None): output channels per stage (default: read
            from each stage's last convolution, or from one small forward for outputs and stages without
            one).
        align_corners (bool): of the bilinear resize of connector outputs to the teacher's stage size.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        stones: Sequence[int] = (1, 2, 3),
        norm_cfg: Optional[dict] = dict(type='BN'),
        student_stages: Optional[List[str]] = None,
        teacher_stages: Optional[List[str]] = None,
        student_channels: Optional[List[int]] = None,
        teacher_channels: Optional[List[int]] = None,
        align_corners: bool = False,
    ):
        super().__init__()
        self.stones = _check_stones(stones)
        self.align_corners = align_corners
        if teacher is None:
            raise ValueError(
                "SteppingStones run the teacher's stages and head, so they need the teacher network "
                '(a teacher cache builds none)'
            )
        student_stages = list(student_stages or backbone_stage_names(student, outputs_allowed=True))
        teacher_stages = list(teacher_stages or backbone_stage_names(teacher))
        self._check_stages(student, teacher, student_stages, teacher_stages)
        n = len(teacher_stages)
        out_indices = list(getattr(teacher.backbone, 'out_indices', range(n)))
        self._check_head_inputs(teacher.decode_head, out_indices)

        s_channels = student_channels or stage_channels(student, student_stages, 'student')
        t_channels = teacher_channels or stage_channels(teacher, teacher_stages, 'teacher')
        self.connectors = nn.ModuleDict(
            {str(i): FeatureProjector(s_channels[i - 1], t_channels[i - 1], norm_cfg) for i in self.stones}
        )
        # Plain attributes set with object.__setattr__: outside this module's tree (no parameters, no
        # state_dict, no .train()), exactly like the distiller's FrozenTeacher.
        t_modules = dict(teacher.named_modules())
        object.__setattr__(self, '_teacher', teacher)
        object.__setattr__(self, '_teacher_stages', [t_modules[m] for m in teacher_stages])
        self._teacher_out_indices = out_indices
        self.num_teacher_stages = n
        self.student_records = [student_stages[i - 1] for i in self.stones]
        self.teacher_records = [teacher_stages[i - 1] for i in self.stones]

    def _check_stages(self, student, teacher, student_stages: List[str], teacher_stages: List[str]) -> None:
        """The stages exist as modules (the teacher's are called one after the other) and hold the stones."""
        outputs = [name for name in teacher_stages if parse_record_name(name)[1] is not None]
        if outputs:
            raise ValueError(
                f"teacher_stages {outputs} name outputs, not modules: the stones call the teacher's "
                'stages one after the other, so each must be a module (e.g. backbone.layer3)'
            )
        deepest = min(len(teacher_stages), len(student_stages))
        too_deep = [i for i in self.stones if i > deepest]
        if too_deep:
            raise ValueError(
                f'stones {too_deep} do not exist: the student has {len(student_stages)} stages and '
                f'the teacher {len(teacher_stages)}, so stones must lie in 1..{deepest}'
            )
        if getattr(teacher, 'with_neck', False):
            raise ValueError(
                "SteppingStones run the teacher's stages straight into its decode head, "
                'so a teacher with a neck is not supported'
            )
        for who, names, model in (('student', student_stages, student), ('teacher', teacher_stages, teacher)):
            modules = dict(model.named_modules())
            missing = [name for name in names if parse_record_name(name)[0] not in modules]
            if missing:
                raise ValueError(f'the {who} has no stage module(s) {missing}')

    def _check_head_inputs(self, head: nn.Module, out_indices: List[int]) -> None:
        in_index = getattr(head, 'in_index', 0)
        positions = in_index if isinstance(in_index, (list, tuple)) else [in_index]
        needed = [out_indices[p] for p in positions]  # 0-based stages the head reads
        shallow = [i for i in self.stones if any(stage < i - 1 for stage in needed)]
        if shallow:
            raise ValueError(
                f"the teacher's decode head reads stages {[s + 1 for s in needed]}, earlier than "
                f'stones {shallow} start in the teacher: use deeper stones'
            )

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
