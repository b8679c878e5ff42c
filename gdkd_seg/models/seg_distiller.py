"""SegDistiller: a frozen MMSeg teacher distilled into a trainable MMSeg student."""
import copy
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmseg.registry import MODELS
from .recorders import ModuleOutputRecorder
from .teacher import FrozenTeacher


@MODELS.register_module()
class SegDistiller(BaseModel):
    """Trains ``student`` with its own task losses plus distillation losses against ``teacher``.

    Validation, test and inference use the student alone (``predict``/``tensor`` modes are the
    student's), so MMSeg's ``IoUMetric``, visualizer and ``tools/test.py`` work unchanged.

    Args:
        student (dict | str): MMSeg segmentor config (e.g. ``EncoderDecoder``), or a config file whose
            ``model`` it is (``'mmseg::deeplabv3/...py'``), or ``dict(cfg_path=FILE, **overrides)``.
        teacher (dict | str): the same forms. Built frozen and kept outside the module tree, so it is
            never in ``parameters()``, the optimizer, DDP or saved checkpoints.
        teacher_checkpoint (str): local path or URL of the teacher's weights, loaded by
            :meth:`init_weights` (the Runner calls it when training starts).
        distill_losses (list[dict]): what to compare. Each item:
            ``name`` (log prefix), ``student`` and ``teacher`` (module names whose outputs are recorded,
            e.g. ``'decode_head.conv_seg'``), ``loss`` (a registered loss config with ``loss_weight``),
            optional ``connector`` (a registered module applied to the student output: trainable).
        val_teacher (bool): evaluate the teacher on the val set before training (``DistillerHook``).
        teacher_fp16 / teacher_channels_last: speed options of the teacher forward (see FrozenTeacher).
    """

    def __init__(self, student: dict, teacher: Union[dict, str], teacher_checkpoint: Optional[str] = None,
                 distill_losses: Optional[List[dict]] = None, val_teacher: bool = False,
                 teacher_fp16: bool = False, teacher_channels_last: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.student = MODELS.build(resolve_model_cfg(student))
        self.data_preprocessor = self.student.data_preprocessor
        # Outside the module tree on purpose (object.__setattr__ skips nn.Module registration).
        object.__setattr__(self, 'teacher', FrozenTeacher(
            MODELS.build(resolve_model_cfg(teacher)), teacher_checkpoint, fp16=teacher_fp16,
            channels_last=teacher_channels_last))
        self.val_teacher = val_teacher
        self.distill_scale = 1.0  # set by DistillerHook during the warm-up

        specs = [dict(spec) for spec in (distill_losses or [])]
        for spec in specs:
            missing = {'name', 'student', 'teacher', 'loss'} - spec.keys()
            if missing:
                raise ValueError(f'distill_losses item {spec} lacks {sorted(missing)}')
        if len({s['name'] for s in specs}) != len(specs):
            raise ValueError(f'distill_losses names must be unique, got {[s["name"] for s in specs]}')
        self.specs = specs
        self.distill_losses = nn.ModuleDict({s['name']: MODELS.build(s['loss']) for s in specs})
        self.connectors = nn.ModuleDict({s['name']: MODELS.build(s['connector'])
                                         for s in specs if s.get('connector')})
        self.student_recorder = ModuleOutputRecorder(self.student, [s['student'] for s in specs])
        self.teacher.record([s['teacher'] for s in specs])

    def _apply(self, fn, *args, **kwargs):
        # .to(device) / .cuda() / .half() reach the hidden teacher too.
        self.teacher.model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def init_weights(self):
        super().init_weights()
        self.teacher.load()

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.student.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.student._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": expected loss, predict or tensor')

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        self.student_recorder.clear()
        losses = self.student.loss(inputs, data_samples)
        teacher_outputs = self.teacher(inputs)
        gt = torch.stack([sample.gt_sem_seg.data[0] for sample in data_samples])
        losses.update(self.distill_loss(self.student_recorder, teacher_outputs, gt))
        return losses

    def distill_loss(self, student_outputs, teacher_outputs, gt) -> Dict[str, Tensor]:
        """One summed entry per declared loss, plus its terms (detached, not summed) for the log."""
        losses = {}
        for spec in self.specs:
            name, loss_fn = spec['name'], self.distill_losses[spec['name']]
            student_out = student_outputs[spec['student']]
            if name in self.connectors:
                student_out = self.connectors[name](student_out)
            terms = loss_fn.forward_terms(student_out, teacher_outputs[spec['teacher']], gt)
            total = sum(terms.values()) * self.distill_scale
            losses[f'distill.{name}.{loss_fn.loss_name}'] = total
            if len(terms) > 1:
                short = loss_fn.loss_name.replace('loss_', '')
                for term, value in terms.items():
                    losses[f'distill.{name}.{short}_{term}'] = value.detach() * self.distill_scale
        return losses

    def student_state_dict(self) -> Dict[str, Tensor]:
        """The student's weights under the keys of a plain MMSeg checkpoint."""
        return {k[len('student.'):]: v for k, v in self.state_dict().items() if k.startswith('student.')}


def resolve_model_cfg(model: Union[dict, str]) -> dict:
    """A model config given inline, as a config file path, or as ``dict(cfg_path=..., **overrides)``."""
    if isinstance(model, str):
        model = dict(cfg_path=model)
    model = copy.deepcopy(dict(model))
    if 'cfg_path' not in model:
        return model
    path = model.pop('cfg_path')
    base = get_config(path) if '::' in path else Config.fromfile(path)  # 'mmseg::...' lives in mmseg
    cfg = Config(dict(model=base.model))
    cfg.merge_from_dict(dict(model=model))
    return cfg.model
