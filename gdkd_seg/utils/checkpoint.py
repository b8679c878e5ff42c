"""Safe checkpoint loading for MMEngine on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default and so refuses MMEngine's own checkpoints: the
message hub pickles ``HistoryBuffer`` objects (numpy arrays, and its statistics methods through
``getattr``). Instead of switching the safety off, we allow-list exactly the types MMEngine/MMSeg
checkpoints carry (``torch.serialization.add_safe_globals``), so MMEngine's own loaders of every scheme (local
paths, http(s), ``open-mmlab://``, ``torchvision://``, ``mmcls://``; ``Runner.resume``, ``load_from``,
``init_cfg=dict(type='Pretrained')``) read them with ``weights_only=True``, and wrap those loaders so that their
errors are named: anything else pickled in a checkpoint is refused with :class:`UnsafeCheckpointError`, a
truncated or corrupt file gives a :class:`CheckpointReadError` naming it, a failed download a
:class:`CheckpointDownloadError` that says to pass a local file.

Writes are atomic: MMEngine's local file backend (which ``save_checkpoint`` writes through) is replaced by
:class:`AtomicLocalBackend`, which writes a temporary file beside the target and renames it, so an
interrupted save leaves the previous file intact instead of a truncated one. :func:`check_state_dict_fits`
names every key of a state dict that does not fit a model.
"""

import functools
import hashlib
import os
import os.path as osp
import pickle
import zipfile

import mmengine.runner.checkpoint as mmengine_checkpoint
import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'UnsafeCheckpointError',
    'CheckpointDownloadError',
    'CheckpointReadError',
    'CheckpointMismatchError',
    'safe_torch_load',
    'install_safe_checkpoint_loaders',
    'checkpoint_is_complete',
    'check_state_dict_fits',
    'AtomicLocalBackend',
    'atomic_write',
    'file_sha256',
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list."""


class CheckpointDownloadError(OSError):
    """A checkpoint URL could not be downloaded."""


class CheckpointReadError(OSError):
    """A checkpoint file is truncated or corrupt."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the model of the config it is used with."""


def _history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr`` while unpickling: HistoryBuffer pickles its statistics methods
    as ``getattr(HistoryBuffer, 'mean')``; any other use of getattr in a checkpoint is refused."""
    if obj is HistoryBuffer and name in {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not an MMEngine HistoryBuffer method')


def _numpy_globals():
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_classes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    return [np.ndarray, np.dtype, multiarray.scalar, multiarray._reconstruct, *dtype_classes]


def checkpoint_safe_globals():
    """The globals that MMEngine/MMSeg checkpoints need besides tensors and containers."""
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), *_numpy_globals()]


def _unpickler_reason(message):
    """The part of torch's long weights_only message that names the refused object."""
    paragraphs = [p.strip() for p in message.split('\n\n') if p.strip()]
    details = [p for p in paragraphs[1:] if not p.startswith(('Check the documentation', 'Please file'))]
    return ' '.join(details).replace('WeightsUnpickler error:', '').strip() or paragraphs[0]


def _zoo_url(source: str) -> str:
    """The URL behind a model-zoo name (``mmcls://mobilenet_v2``), as MMEngine looks it up; else ``source``."""
    zoos = {
        'mmcls://': mmengine_checkpoint.get_mmcls_models,
        'open-mmlab://': mmengine_checkpoint.get_external_models,
        'openmmlab://': mmengine_checkpoint.get_external_models,
        'torchvision://': mmengine_checkpoint.get_torchvision_models,
    }
    for prefix, table in zoos.items():
        if source.startswith(prefix):
            return table().get(source[len(prefix) :], source)
    return source


def _load_error(source, err: BaseException) -> BaseException:
    """The error that names what went wrong in loading ``source``: an unsafe pickle, a truncated file or a failed
    download (None where ``err`` is none of these)."""
    if isinstance(err, (UnsafeCheckpointError, CheckpointReadError, CheckpointDownloadError)):
        return err
    if isinstance(err, pickle.UnpicklingError):
        return UnsafeCheckpointError(
            f'Refused to load checkpoint {source}: it holds pickled objects that are not plain tensors, '
            f'containers or the MMEngine/numpy types gdkd_seg allows ({_unpickler_reason(str(err))}). Unpickling '
            'them could run arbitrary code. If you trust where the file comes from, load it knowingly with '
            '`torch.load(path, weights_only=False)` and re-save only its state_dict, or allow the type with '
            '`torch.serialization.add_safe_globals([...])`.'
        )
    if isinstance(err, (RuntimeError, EOFError, zipfile.BadZipFile)):
        if isinstance(source, (str, os.PathLike)) and osp.isfile(source) and not checkpoint_is_complete(source):
            first_line = str(err).splitlines()[0] if str(err) else ''
            return CheckpointReadError(
                f'Could not read checkpoint {source}: it is truncated or corrupt ({type(err).__name__}: '
                f'{first_line}). A save or copy was probably interrupted: use the previous checkpoint, or copy '
                'the file again.'
            )
        return None
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and '://' in str(source):
        cache = osp.join(torch.hub.get_dir(), 'checkpoints')
        url = _zoo_url(str(source))
        return CheckpointDownloadError(
            f'Could not download checkpoint {source}' + (f' ({url})' if url != source else '') + f': {err}. '
            f'Without internet access, download the file elsewhere and copy it into {cache} or pass its local '
            'path instead.'
        )
    return None


def safe_torch_load(file, map_location=None, mmap: bool = False):
    """``torch.load(file, weights_only=True)`` with the MMEngine allow-list; a clear error otherwise. ``mmap``
    maps the tensors instead of reading them (cheap when only the meta is needed)."""
    try:
        return torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        clear = _load_error(file, err)
        if clear is None or clear is err:
            err.add_note(f'(while loading checkpoint {file})')
            raise
        raise clear from err


def _guarded(load):
    """One of MMEngine's scheme loaders, its errors named (:func:`_load_error`)."""

    @functools.wraps(load)
    def load_checkpoint(filename, *args, **kwargs):
        try:
            return load(filename, *args, **kwargs)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
            clear = _load_error(filename, err)
            if clear is None or clear is err:
                raise
            raise clear from err

    load_checkpoint.guarded = True
    return load_checkpoint


def install_safe_checkpoint_loaders():
    """Let ``torch.load(weights_only=True)``, which MMEngine's loaders call, read MMEngine's checkpoints (the
    allow-list above), and name the errors of every scheme MMEngine registers (idempotent)."""
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
    for prefix, load in list(CheckpointLoader._schemes.items()):
        if not getattr(load, 'guarded', False):
            CheckpointLoader.register_scheme(prefix, _guarded(load), force=True)


def checkpoint_is_complete(path: str) -> bool:
    """Whether ``path`` is a whole torch checkpoint: torch's zip format keeps its index at the end of the
    file, so a truncated file has none (cheap: reads the index, not the tensors)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def atomic_write(data: bytes, filepath: str) -> None:
    """Write ``data`` to a temporary file beside ``filepath``, then rename it over ``filepath``: readers see
    the old file or the new one, never a part."""
    os.makedirs(osp.dirname(osp.abspath(filepath)), exist_ok=True)
    tmp = f'{filepath}.tmp-{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except OSError as err:
        kept = f'the previous {filepath} is intact' if osp.exists(filepath) else f'no {filepath} was written'
        raise type(err)(
            err.errno, f'Could not write {filepath} ({len(data) / 2**20:.1f} MiB): {err.strerror or err}; {kept}'
        ) from err
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend with atomic ``put`` / ``put_text`` (see :func:`atomic_write`)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(obj.encode(encoding), str(filepath))


register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def _strip_prefix(state_dict: dict, prefix: str) -> dict:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def state_dict_of(checkpoint) -> dict:
    """The weights of a loaded checkpoint (``state_dict`` of an MMEngine one, or the dict itself), without a
    DDP ``module.`` prefix."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else checkpoint
    return _strip_prefix(dict(state), 'module.')


def check_state_dict_fits(
    model: torch.nn.Module,
    state_dict: dict,
    source: str,
    target: str,
    hint: str = '',
    error=CheckpointMismatchError,
    allow_unexpected: bool = False,
) -> None:
    """Raise ``error`` naming every missing, unexpected or mis-shaped key of ``state_dict`` for ``model``.

    ``source`` names the checkpoint, ``target`` what it should fit (e.g. 'the teacher config'), ``hint`` the
    fix; where only the classifier's output size differs, the message says so with both class counts.
    ``allow_unexpected`` accepts extra keys (a pretrained backbone's classification head).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = [] if allow_unexpected else sorted(set(state_dict) - set(expected))
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f'Checkpoint {source} does not fit {target}:']
    if mismatched:
        lines += [f'  {k}: checkpoint {list(got)} vs config {list(want)}' for k, got, want in mismatched[:10]]
        classes = [
            (got[0], want[0]) for k, got, want in mismatched if k.endswith('conv_seg.weight') and got[0] != want[0]
        ]
        if classes:
            lines.append(
                f'  the checkpoint predicts {classes[0][0]} classes, {target} {classes[0][1]}: use a '
                'checkpoint trained on this dataset or fix num_classes'
            )
        elif mismatched:
            lines.append('  the layers differ in shape: the checkpoint is of another architecture or width')
    if missing:
        lines.append(f'  missing in checkpoint ({len(missing)}): {missing[:10]}')
    if unexpected:
        lines.append(f'  unexpected in checkpoint ({len(unexpected)}): {unexpected[:10]}')
    if hint:
        lines.append(hint)
    raise error('\n'.join(lines))


def file_sha256(path: str) -> str:
    """The SHA-256 of a file, read in 16 MiB blocks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            digest.update(block)
    return digest.hexdigest()
