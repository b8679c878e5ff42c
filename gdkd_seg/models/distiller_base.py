"""The distillers' shared core. The distiller owns every network, every forward and every hook; the losses
only ever see the tensors it recorded.

Call chain of one training step (``mode='loss'``)::

    config: model=dict(type='SegDistiller', student=..., teacher=..., components=dict(...),
                       distill_losses=dict(decode=dict(student=..., teacher=..., loss=...), ...))
     │
     ├─ SegDistiller.__init__ ── builds the student (trainable), the FrozenTeacher (frozen, outside the
     │                           module tree), the components (distiller-side networks, e.g.
     │                           SteppingStones), the connectors and the losses; puts the recorders'
     │                           hooks on the modules the declarations name
     │
     └─ BaseDistiller.loss(inputs, data_samples)
          ├─ student.loss(inputs, samples)     ──► student recorder: outputs of the named student modules
          ├─ teacher(inputs)                   ──► teacher recorder: float32 copies of the named teacher
          │                                        modules (inference mode)
          ├─ component(student, teacher records) ► component outputs (e.g. the stepping stones' logits)
          └─ for each declaration:
               loss.forward_terms(connector(student record), teacher record, gt, **extra_inputs)
                 ──► {'distill.<name>.<loss_name>': weighted sum, 'distill.<name>.<term>': terms}

``predict`` and ``tensor`` modes are the student's own, so validation, test and export see the student.
"""

from typing import Dict, NamedTuple, Optional

from mmengine.model import BaseModel
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..config import loss_declarations
from . import feature_only
from .recorders import ModuleOutputRecorder
from .teacher import FrozenTeacher


class Records(NamedTuple):
    """What one step recorded: student module outputs, teacher module outputs, component outputs."""

    student: ModuleOutputRecorder
    teacher: Dict[str, Tensor]
    components: Dict[str, object]


def build_in_mmseg_scope(cfg, **default_args):
    """Build a module of ours (losses, connectors, components are registered in MMSeg's registry) whatever
    the config's default scope is (classification configs run in mmpretrain's)."""
    if isinstance(cfg, nn.Module):
        return cfg
    return MODELS.build(dict(dict(_scope_='mmseg'), **cfg), default_args=default_args or None)


def check_loss_name(name: str, loss: nn.Module) -> None:
    """MMEngine sums every logged key that contains "loss": a loss's ``loss_name`` must, or it would not train."""
    loss_name = getattr(loss, 'loss_name', '')
    if 'loss' not in loss_name:
        raise ValueError(
            f'model.distill_losses.{name}: {type(loss).__name__} has loss_name={loss_name!r}, which does not contain '
            '"loss", so MMEngine would log it without adding it to the total: name it loss_<something>'
        )


def term_key(name: str, loss: nn.Module, term: str) -> str:
    """The logged key of one term of a loss: ``distill.<name>.<method>_<term>`` (e.g. ``distill.decode.gdkd_high``),
    without "loss", so that MMEngine logs it without adding it to the total a second time."""
    if 'loss' in term:
        raise ValueError(
            f'{type(loss).__name__} returns a term named {term!r}: term names must not contain "loss" (MMEngine '
            'would add the term to the total a second time)'
        )
    method = loss.loss_name.replace('loss', '').strip('_') or type(loss).__name__.replace('Loss', '').lower()
    return f'distill.{name}.{method}_{term}'


class BaseDistiller(BaseModel):
    """Trains ``student`` with its own task losses plus the declared distillation losses against
    ``teacher`` (the call chain is in this module's docstring).

    Subclasses build the student and the :class:`FrozenTeacher` and say where the labels are
    (:meth:`gt_labels`).

    Args:
        student (nn.Module): the trainable model; it has ``loss``/``predict`` modes and a
            ``data_preprocessor``, which becomes the distiller's.
        teacher (FrozenTeacher): kept outside the module tree, so it is never in ``parameters()``, the
            optimizer, DDP or saved checkpoints; its weights are loaded by :meth:`init_weights`.
        distill_losses (dict): ``{name: declaration}``, each ``dict(student=MODULE, teacher=MODULE,
            loss=LOSS_CFG)`` comparing the recorded output of a student module with that of a teacher module;
            optional ``connector`` (a registered trainable module applied to the student output) and
            ``extra_inputs`` (``{loss argument: component name}``: component outputs the loss takes as
            keyword arguments). An entry set to None is left out. Logged as ``distill.<name>.<loss_name>``.
        components (dict): ``{name: module config}`` of distiller-side networks whose outputs losses read,
            e.g. ``dict(stepping_stones=dict(type='SteppingStones', stones=[1, 2, 3]))``. Each is built with
            ``student=`` and ``teacher=`` (the networks), names the modules it reads in ``student_records`` /
            ``teacher_records``, and is called as ``component(student_records, teacher_records)``.
        detach_head_input (bool): the student's heads train on detached backbone features, so that its
            backbone learns from the distillation losses only (feature-only KD).
        val_teacher (bool): evaluate the teacher on the val set before training (``TeacherEvalHook``).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: FrozenTeacher,
        distill_losses: Optional[dict] = None,
        components: Optional[dict] = None,
        detach_head_input: bool = False,
        val_teacher: bool = False,
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        self.student = student
        self.data_preprocessor = student.data_preprocessor
        # Outside the module tree on purpose (object.__setattr__ skips nn.Module registration).
        object.__setattr__(self, 'teacher', teacher)
        self.val_teacher = val_teacher
        self.distill_scale = 1.0  # set by DistillWarmupHook

        self.declarations = loss_declarations(distill_losses)
        self.components = self._build_components(components or {})
        self.distill_losses = nn.ModuleDict(
            {name: build_in_mmseg_scope(decl['loss']) for name, decl in self.declarations.items()}
        )
        for name, loss in self.distill_losses.items():
            check_loss_name(name, loss)
        self.connectors = nn.ModuleDict(
            {name: build_in_mmseg_scope(d['connector']) for name, d in self.declarations.items() if d.get('connector')}
        )
        self._put_recorders()
        self.detach_head_input = detach_head_input
        if detach_head_input:
            feature_only.detach_head_input(self.student)

    def _build_components(self, components: dict) -> nn.ModuleDict:
        """The declared components, built on the student and the teacher network; every ``extra_inputs`` of a
        declaration must name one."""
        built = nn.ModuleDict(
            {
                name: build_in_mmseg_scope(cfg, student=self.student, teacher=self.teacher.model)
                for name, cfg in components.items()
                if cfg is not None
            }
        )
        if built and self.teacher.model is None:
            raise ValueError(
                f'The components {sorted(built)} run the teacher, which a teacher cache does '
                'not build: train them with the live teacher (drop model.teacher_cache)'
            )
        for name, decl in self.declarations.items():
            unknown = sorted(set(decl['extra_inputs'].values()) - set(built))
            if unknown:
                raise ValueError(
                    f'model.distill_losses.{name}.extra_inputs name components {unknown}, but '
                    f'model.components has {sorted(built)}'
                )
        return built

    def _put_recorders(self) -> None:
        """Record the student and teacher modules the declarations and components read."""
        student_names = [d['student'] for d in self.declarations.values()]
        teacher_names = [d['teacher'] for d in self.declarations.values()]
        for component in self.components.values():
            student_names += list(getattr(component, 'student_records', []))
            teacher_names += list(getattr(component, 'teacher_records', []))
        self.student_recorder = ModuleOutputRecorder(self.student, student_names)
        self.teacher.capture(teacher_names)

    def _apply(self, fn, *args, **kwargs):
        # .to(device) / .cuda() / .half() reach the hidden teacher too.
        if self.teacher.model is not None:
            self.teacher.model._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def init_weights(self):
        super().init_weights()
        self.teacher.load()

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode=mode)
        raise RuntimeError(f'Invalid mode "{mode}": expected loss, predict or tensor')

    def gt_labels(self, data_samples) -> Tensor:
        """The batch's labels as the losses take them."""
        raise NotImplementedError

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        with self.student_recorder.recording():
            losses = self.student.loss(inputs, data_samples)
        records = self.collect_records(inputs, data_samples)
        losses.update(self.distill_loss(records, self.gt_labels(data_samples)))
        return losses

    def collect_records(self, inputs: Tensor, data_samples) -> Records:
        """After the student's forward: the teacher's outputs (run now, or cached with the batch) and the
        components' outputs."""
        teacher = self.teacher.outputs(inputs, data_samples)
        components = {name: component(self.student_recorder, teacher) for name, component in self.components.items()}
        return Records(self.student_recorder, teacher, components)

    def distill_loss(self, records: Records, gt) -> Dict[str, Tensor]:
        """One summed entry per declared loss, plus its terms (detached, not summed) for the log."""
        losses = {}
        for name, decl in self.declarations.items():
            loss_fn = self.distill_losses[name]
            student_out = records.student[decl['student']]
            if name in self.connectors:
                student_out = self.connectors[name](student_out)
            extra = {arg: records.components[component] for arg, component in decl['extra_inputs'].items()}
            terms = loss_fn.forward_terms(student_out, records.teacher[decl['teacher']], gt, **extra)
            total = sum(terms.values()) * self.distill_scale
            losses[f'distill.{name}.{loss_fn.loss_name}'] = total
            if len(terms) > 1:
                for term, value in terms.items():
                    losses[term_key(name, loss_fn, term)] = value.detach() * self.distill_scale
        return losses

    def student_state_dict(self) -> Dict[str, Tensor]:
        """The student's weights under the keys of a plain checkpoint of the student."""
        return {k[len('student.') :]: v for k, v in self.state_dict().items() if k.startswith('student.')}
