"""The two teachers a distiller can have, behind one interface: ``capture(names)`` (which module outputs the
losses read), ``load()`` (weights or cache, checked), ``outputs(inputs, data_samples)`` (those outputs for a
batch) and ``predict``. :class:`FrozenTeacher` runs the network; :class:`CachedTeacher` reads the logits that
came with the batch from a teacher cache."""

import glob
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from ..datasets.teacher_cache import TeacherCacheError, check_manifest, read_manifest, teacher_identity
from ..datasets.teacher_logits import teacher_logits_of
from ..utils import CheckpointDownloadError, check_state_dict_fits, state_dict_of
from .recorders import ModuleOutputRecorder

CHECKPOINT_HINT = 'pass a local file with --cfg-options model.teacher_checkpoint=PATH'


class TeacherCheckpointError(RuntimeError):
    """The teacher checkpoint is missing, unreachable or does not fit the teacher config."""


def check_teacher_weights_fit(model: nn.Module, state_dict: dict, source: str) -> None:
    """Raise TeacherCheckpointError naming every missing, unexpected or mis-shaped key."""
    check_state_dict_fits(
        model,
        state_dict,
        source,
        'the teacher config',
        'Is this the checkpoint of the teacher architecture in model.teacher?',
        TeacherCheckpointError,
    )


def check_finite_weights(state_dict: dict, source: str) -> None:
    """A teacher with a NaN or inf weight teaches NaN: refuse it, naming the tensors."""
    bad = [
        k for k, v in state_dict.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:
        raise TeacherCheckpointError(
            f'Teacher checkpoint {source} has non-finite (NaN or inf) values in {len(bad)} '
            f'tensors, e.g. {bad[:5]}: it is corrupt or from a diverged run; use another '
            'checkpoint of the teacher'
        )


class FrozenTeacher:
    """Holds the teacher in eval mode without gradients; records the outputs the losses need.

    The forward runs under ``torch.inference_mode()`` (no autograd bookkeeping at all); the recorded
    outputs are returned as ordinary contiguous float32 copies, so the losses can save them for the
    student's backward (inference tensors cannot be). ``fp16`` runs the forward under autocast (bf16 on
    CPU, fp16 on GPU); ``channels_last`` converts the teacher's weights and inputs to that memory format.
    """

    def __init__(self, model: nn.Module, checkpoint, fp16=False, channels_last=False):
        self.model = model.eval().requires_grad_(False)
        self.checkpoint = checkpoint
        self.fp16 = fp16
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.loaded = False
        self.recorder = None
        self.run_auxiliary = False

    def capture(self, names):
        """Record the outputs of the modules ``names`` in each forward."""
        names = list(names)
        self.recorder = ModuleOutputRecorder(self.model, names)
        self.run_auxiliary = any(n.startswith('auxiliary_head') for n in names)

    def load(self):
        if not self.checkpoint:
            raise TeacherCheckpointError(f'model.teacher_checkpoint is not set: {CHECKPOINT_HINT}')
        if osp.isdir(self.checkpoint):
            found = sorted(glob.glob(osp.join(glob.escape(self.checkpoint), '*.pth')))
            names = ', '.join(osp.basename(f) for f in found[:10]) + (', ...' if len(found) > 10 else '')
            newest = max(found, key=osp.getmtime) if found else None
            hint = f'pass one, e.g. --cfg-options model.teacher_checkpoint={newest}' if found else CHECKPOINT_HINT
            raise TeacherCheckpointError(
                f'Teacher checkpoint {self.checkpoint} is a directory, not a checkpoint file. It holds '
                f'{names or "no .pth file"}: {hint}'
            )
        try:
            ckpt = CheckpointLoader.load_checkpoint(self.checkpoint, map_location='cpu')
        except FileNotFoundError as err:
            raise TeacherCheckpointError(
                f'Teacher checkpoint not found: {self.checkpoint}. Train or download the teacher and {CHECKPOINT_HINT}'
            ) from err
        except CheckpointDownloadError as err:
            raise TeacherCheckpointError(
                f'Could not download the teacher checkpoint {self.checkpoint} ({err.__cause__ or err}). '
                f'This machine may have no internet access: download it elsewhere and {CHECKPOINT_HINT}'
            ) from err
        state = state_dict_of(ckpt)
        check_teacher_weights_fit(self.model, state, self.checkpoint)
        check_finite_weights(state, self.checkpoint)
        self.model.load_state_dict(state, strict=True)
        self.model.eval()
        self.loaded = True

    def _require_loaded(self):
        if not self.loaded:
            raise TeacherCheckpointError(
                'The teacher has no weights yet: call model.init_weights() (the Runner does so when training starts).'
            )

    def _autocast(self, inputs):
        dtype = torch.bfloat16 if inputs.device.type == 'cpu' else torch.float16
        return torch.autocast(inputs.device.type, dtype=dtype, enabled=self.fp16)

    def __call__(self, inputs):
        """Run backbone, decode head (and auxiliary heads when recorded); return recorded outputs."""
        self._require_loaded()
        self.model.eval()
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self.recorder.recording(), torch.inference_mode(), self._autocast(inputs):
            self.run_model(inputs)
        outputs = {name: _autograd_float32(out) for name, out in self.recorder.outputs.items()}
        self.recorder.clear()  # the inference-mode originals are not needed any more
        return outputs

    def outputs(self, inputs, data_samples=None):
        """The captured outputs for ``inputs`` (the teacher sees the images only)."""
        return self(inputs)

    def run_model(self, inputs):
        """The forward that reaches the recorded modules: a segmentor's backbone and heads (a classifier
        teacher overrides this, see ``ClsDistiller``)."""
        feats = self.model.extract_feat(inputs)
        self.model.decode_head(feats)
        if self.run_auxiliary and self.model.with_auxiliary_head:
            heads = self.model.auxiliary_head
            for head in heads if isinstance(heads, nn.ModuleList) else [heads]:
                head(feats)

    def predict(self, inputs, data_samples):
        self._require_loaded()
        self.model.eval()
        # no_grad, not inference_mode: metrics and visualizers may update the predictions in place
        with torch.no_grad():
            return self.model.predict(inputs, data_samples)


def _autograd_float32(out):
    """Contiguous float32 copies of the tensors in ``out`` (nested tuples/lists/dicts), made outside
    inference mode, hence ordinary tensors that autograd may save."""
    if torch.is_tensor(out):
        return out.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    if isinstance(out, (tuple, list)):
        return type(out)(_autograd_float32(o) for o in out)
    if isinstance(out, dict):
        return {k: _autograd_float32(v) for k, v in out.items()}
    return out


class CachedTeacher:
    """Stands in for the :class:`FrozenTeacher` when the teacher's logits come with the batch
    (``SegDistiller(teacher_cache=DIR)``): no teacher network is built, loaded or run.

    :meth:`load` checks that the cache in ``cache_dir`` is complete and was built for this teacher (its
    config and checkpoint) and these outputs; :meth:`outputs` gathers the batch's cached logits.
    """

    model = None

    def __init__(self, model_cfg: dict, cache_dir: str):
        self.model_cfg, self.cache_dir = model_cfg, cache_dir
        self.names, self.stride = [], None

    def capture(self, names):
        self.names = list(dict.fromkeys(names))

    def load(self):
        manifest = read_manifest(self.cache_dir)
        check_manifest(manifest, self.cache_dir, teacher_identity(self.model_cfg), self.names)
        self.stride = manifest['stride']

    def outputs(self, inputs, data_samples):
        """The batch's cached logits, at the teacher's resolution of the padded ``inputs``."""
        if self.stride is None:
            raise TeacherCacheError(
                'The teacher cache is not checked yet: call model.init_weights() (the Runner '
                'does so when training starts)'
            )
        return {name: teacher_logits_of(data_samples, name, inputs.shape[-2:], self.stride) for name in self.names}

    def predict(self, inputs, data_samples):
        raise TeacherCacheError(
            'With model.teacher_cache the teacher is not built, so it cannot be evaluated '
            '(val_teacher): evaluate it with its own config and checkpoint, tools/test.py'
        )
