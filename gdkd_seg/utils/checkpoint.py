"""Safe checkpoint loading for MMEngine on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default and so refuses MMEngine's own checkpoints: the
message hub pickles ``HistoryBuffer`` objects (numpy arrays, and its statistics methods through
``getattr``). Instead of switching the safety off, we allow-list exactly the types MMEngine/MMSeg
checkpoints carry and register loaders for MMEngine's ``CheckpointLoader`` schemes (local paths,
http(s), ``open-mmlab://``, ``torchvision://``), so ``Runner.resume``, ``load_from`` and
``init_cfg=dict(type='Pretrained')`` all go through :func:`safe_torch_load` (``mmcls://`` too).
Anything else pickled in a checkpoint is refused with :class:`UnsafeCheckpointError`; a truncated or corrupt file
gives a :class:`CheckpointReadError` naming it.

Writes are atomic: MMEngine's local file backend (which ``save_checkpoint`` writes through) is replaced by
:class:`AtomicLocalBackend`, which writes a temporary file beside the target and renames it, so an
interrupted save leaves the previous file intact instead of a truncated one. :func:`check_state_dict_fits`
names every key of a state dict that does not fit a model.
"""

import os
import os.path as osp
import pickle
import zipfile
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    _process_mmcls_checkpoint,
    get_deprecated_model_names,
    get_external_models,
    get_mmcls_models,
    get_torchvision_models,
)

__all__ = [
    'UnsafeCheckpointError',
    'CheckpointDownloadError',
    'CheckpointReadError',
    'CheckpointMismatchError',
    'safe_torch_load',
    'load_from_local',
    'load_from_http',
    'install_safe_checkpoint_loaders',
    'checkpoint_is_complete',
    'check_state_dict_fits',
    'AtomicLocalBackend',
    'atomic_write',
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


def safe_torch_load(file, map_location=None):
    """``torch.load(file, weights_only=True)`` with the MMEngine allow-list; clear error otherwise."""
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(file, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile) as err:
        first_line = str(err).splitlines()[0] if str(err) else ''
        if isinstance(file, (str, os.PathLike)) and not checkpoint_is_complete(file):
            raise CheckpointReadError(
                f'Could not read checkpoint {file}: it is truncated or corrupt ({type(err).__name__}: '
                f'{first_line}). A save or copy was probably interrupted: use the previous checkpoint, or copy '
                'the file again.'
            ) from err
        err.add_note(f'(while loading checkpoint {file})')
        raise
    except pickle.UnpicklingError as err:
        reason = _unpickler_reason(str(err))
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {file}: it holds pickled objects that are not plain tensors, '
            f'containers or the MMEngine/numpy types gdkd_seg allows ({reason}). Unpickling them could run '
            'arbitrary code. If you trust where the file comes from, load it knowingly with '
            '`torch.load(path, weights_only=False)` and re-save only its state_dict, or allow the type with '
            '`torch.serialization.add_safe_globals([...])`.'
        ) from err


def load_from_local(filename, map_location=None):
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint file not found: {filename}')
    return safe_torch_load(filename, map_location)


def _download(url, model_dir):
    name = osp.basename(urlparse(url).path)
    cached = osp.join(model_dir, name)
    if not osp.isfile(cached):
        os.makedirs(model_dir, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, cached, progress=False)
        except Exception as err:  # URLError, HTTPError, socket errors, ...
            raise CheckpointDownloadError(
                f'Could not download checkpoint {url}: {err}. Without internet access, download the file '
                f'elsewhere, copy it to {cached} or pass its local path instead of the URL.'
            ) from err
    return cached


def load_from_http(url, map_location=None, model_dir=None):
    """Download once into torch's hub cache (rank 0 first in distributed runs), then load safely."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    rank, world_size = get_dist_info()
    if rank == 0:
        path = _download(url, model_dir)
    if world_size > 1:
        barrier()
        if rank > 0:
            path = _download(url, model_dir)
    return safe_torch_load(path, map_location)


def load_from_openmmlab(filename, map_location=None):
    name = filename.split('://', 1)[1]
    name = get_deprecated_model_names().get(name, name)
    url = get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location)
    return load_from_local(osp.join(osp.expanduser(os.getenv('MMENGINE_HOME', '~/.cache/mmengine')), url), map_location)


def load_from_torchvision(filename, map_location=None):
    return load_from_http(get_torchvision_models()[filename.split('://', 1)[1]], map_location)


def load_from_mmcls(filename, map_location=None):
    """``mmcls://<model>`` (MMPretrain's model zoo, e.g. the MobileNetV2 students' backbone), loaded safely."""
    checkpoint = load_from_http(get_mmcls_models()[filename.split('://', 1)[1]], map_location)
    return _process_mmcls_checkpoint(checkpoint)


def install_safe_checkpoint_loaders():
    """Route MMEngine's checkpoint schemes through :func:`safe_torch_load` (idempotent)."""
    CheckpointLoader.register_scheme('', load_from_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'), load_from_http, force=True)
    CheckpointLoader.register_scheme(('open-mmlab://', 'openmmlab://'), load_from_openmmlab, force=True)
    CheckpointLoader.register_scheme(('torchvision://', 'modelzoo://'), load_from_torchvision, force=True)
    CheckpointLoader.register_scheme('mmcls://', load_from_mmcls, force=True)


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
    model: torch.nn.Module, state_dict: dict, source: str, target: str, hint: str = '', error=CheckpointMismatchError
) -> None:
    """Raise ``error`` naming every missing, unexpected or mis-shaped key of ``state_dict`` for ``model``.

    ``source`` names the checkpoint, ``target`` what it should fit (e.g. 'the teacher config'), ``hint`` the
    fix; where only the classifier's output size differs, the message says so with both class counts.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
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
