"""What the segmentation and classification distillers share: loss declarations, recorders, the hidden
frozen teacher and the distillation-loss loop."""
import copy
from typing import Dict, List, Optional, Union

from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmseg.registry import MODELS
from .recorders import ModuleOutputRecorder
from .teacher import FrozenTeacher


class BaseDistiller(BaseModel):
    """Trains ``student`` with its own task losses plus the declared distillation losses against
    ``teacher``; ``predict`` and ``tensor`` modes are the student's.

    Subclasses build the student and the :class:`FrozenTeacher` and say where the labels are
    (:meth:`gt_labels`).

    Args:
        student (nn.Module): the trainable model; it has ``loss``/``predict`` modes and a
            ``data_preprocessor``, which becomes the distiller's.
        teacher (FrozenTeacher): kept outside the module tree, so it is never in ``parameters()``, the
            optimizer, DDP or saved checkpoints; its weights are loaded by :meth:`init_weights`.
        distill_losses (list[dict]): what to compare. Each item: ``name`` (log prefix), ``student`` and
            ``teacher`` (module names whose outputs are recorded), ``loss`` (a registered loss config with
            ``loss_weight``), optional ``connector`` (a registered module applied to the student output:
            trainable).
        val_teacher (bool): evaluate the teacher on the val set before training (``DistillerHook``).
    """

    def __init__(self, student: nn.Module, teacher: FrozenTeacher, distill_losses: Optional[List[dict]] = None,
                 val_teacher: bool = False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.student = student
        self.data_preprocessor = student.data_preprocessor
        # Outside the module tree on purpose (object.__setattr__ skips nn.Module registration).
        object.__setattr__(self, 'teacher', teacher)
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
        # Losses/connectors that work on the networks themselves (stepping stones run teacher stages on
        # student features; feature-only KD detaches the student's head input) define bind_models().
        for module in (*self.distill_losses.values(), *self.connectors.values()):
            if hasattr(module, 'bind_models'):
                module.bind_models(self.student, self.teacher.model)

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

    def gt_labels(self, data_samples) -> Tensor:
        """The batch's labels as the losses take them."""
        raise NotImplementedError

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        self.student_recorder.clear()
        losses = self.student.loss(inputs, data_samples)
        teacher_outputs = self.teacher(inputs)
        losses.update(self.distill_loss(self.student_recorder, teacher_outputs, self.gt_labels(data_samples)))
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
        """The student's weights under the keys of a plain checkpoint of the student."""
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
