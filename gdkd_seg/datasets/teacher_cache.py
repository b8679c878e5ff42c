"""The teacher cache as the data side sees it: its manifest (``DIR/cache.json``), the checks that a cache fits
a config's teacher, losses and pipeline, and the rewrite of the train pipeline that loads the cached logits
and carries them through the augmentation (:mod:`.teacher_logits`). The cache is built by
:mod:`gdkd_seg.cache_builder` (``tools/cache_teacher.py``).

The cache holds, per training image, the logits of every teacher output the config's losses read (the heads'
``conv_seg``), for the whole image at the pipeline's base scale (the ``scale`` of its first
``RandomResize`` / ``Resize``), at the teacher's output resolution, in float16, as
``DIR/logits/<image path under the image folder>.npz``; ``DIR/cache.json`` names the teacher (its config and
checkpoint, hashed), the outputs, the stride and the base scale. A cache is only read for the teacher and
base scale it was built with; a changed teacher is a clear error, never a stale read.
"""

import hashlib
import os.path as osp
import zipfile
from typing import List, Optional

import mmengine
from mmengine.config import Config

from ..config import loss_declarations, resolve_model_cfg
from ..utils import file_sha256

MANIFEST = 'cache.json'
CACHE_VERSION = 1
RESIZES = ('RandomResize', 'Resize')


class TeacherCacheError(RuntimeError):
    """A teacher cache is missing, incomplete or was built for another teacher or pipeline."""


def cached_outputs(model_cfg) -> List[str]:
    """The teacher outputs the declared losses read; only logits (a head's ``conv_seg``) can be cached."""
    declarations = loss_declarations(model_cfg.get('distill_losses'))
    names = list(dict.fromkeys(d['teacher'] for d in declarations.values()))
    features = [n for n in names if not n.endswith('conv_seg')]
    if features or model_cfg.get('components'):
        raise TeacherCacheError(
            "model.teacher_cache holds the teacher's logits only (a head's conv_seg output), but "
            + (
                f'the losses read the teacher features {features}'
                if features
                else f'the components {sorted(model_cfg.components)} run the teacher'
            )
            + ': feature-level methods (feature-only KD, block-wise KD) need the live teacher; drop teacher_cache'
        )
    return names


def teacher_identity(model_cfg) -> dict:
    """What the cache belongs to: the teacher's resolved config (hashed) and its checkpoint (a local file
    by its SHA-256, a URL by itself)."""
    teacher = Config(dict(model=resolve_model_cfg(model_cfg['teacher']))).pretty_text
    checkpoint = model_cfg.get('teacher_checkpoint')
    identity = dict(config_sha1=hashlib.sha1(teacher.encode()).hexdigest(), checkpoint=checkpoint)
    if checkpoint and osp.isfile(checkpoint):
        identity['checkpoint_sha256'] = file_sha256(checkpoint)
    return identity


def base_scale(pipeline: list) -> Optional[tuple]:
    """The ``scale`` of the pipeline's first resize (the scale random resizes vary around), else None."""
    for transform in pipeline:
        if transform.get('type') in RESIZES:
            return tuple(transform['scale'])
    return None


def train_dataset_cfg(cfg) -> dict:
    dataset = dict(cfg.train_dataloader.dataset)
    if 'dataset' in dataset or 'datasets' in dataset:
        raise TeacherCacheError('model.teacher_cache supports a plain train dataset, not a dataset wrapper')
    return dataset


def image_dir(dataset: dict) -> str:
    prefix = dataset.get('data_prefix') or {}
    return osp.join(dataset.get('data_root') or '', prefix.get('img_path', ''))


def teacher_differs(built: dict, identity: dict) -> List[str]:
    """What differs between the teacher a cache was built for and ``identity``: the config's hash, and the
    checkpoint by content (its SHA-256) where both have one, else by path or URL; a moved file is the same."""
    stale = [
        k for k in ('config_sha1', 'checkpoint_sha256') if k in identity and k in built and identity[k] != built[k]
    ]
    if (
        not ('checkpoint_sha256' in identity and 'checkpoint_sha256' in built)
        and identity['checkpoint'] != built['checkpoint']
    ):
        stale.append('checkpoint')
    return stale


def is_cached(path: str) -> bool:
    """Whether ``path`` is a whole cache file (an ``.npz`` zip whose index is readable; a truncated one has none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return 'base_shape.npy' in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_manifest(cache_dir: str) -> Optional[dict]:
    path = osp.join(cache_dir, MANIFEST)
    return mmengine.load(path) if osp.isfile(path) else None


def _build_command(config: str, cache_dir: str) -> str:
    return f'python tools/cache_teacher.py {config} --out {cache_dir}'


def check_manifest(
    manifest: Optional[dict], cache_dir: str, identity: dict, outputs: List[str], config: str = 'CONFIG'
) -> None:
    """The cache in ``cache_dir`` is complete and was built for this teacher and these outputs."""
    build = _build_command(config, cache_dir)
    if manifest is None:
        raise TeacherCacheError(
            f'No teacher cache at {cache_dir} (model.teacher_cache): build it with {build} '
            '(it prints the disk it needs before it starts)'
        )
    if not manifest.get('complete'):
        raise TeacherCacheError(
            f'The teacher cache at {cache_dir} is incomplete (its build was interrupted): run '
            f'{build} again, it continues where it stopped'
        )
    built = manifest['teacher']
    stale = teacher_differs(built, identity)
    if stale:
        raise TeacherCacheError(
            f'The teacher cache at {cache_dir} was built for another teacher (its {stale} '
            f'differ: built with {built}, this config has {identity}); rebuild it with {build} '
            'into another folder, or point model.teacher_cache at the right one'
        )
    missing = [n for n in outputs if n not in manifest['outputs']]
    if missing:
        raise TeacherCacheError(
            f'The teacher cache at {cache_dir} holds {sorted(manifest["outputs"])}, not '
            f'{missing} that the losses read: rebuild it with {build}'
        )


def check_base_scale(manifest: dict, cache_dir: str, scale: Optional[tuple], config: str) -> None:
    if (tuple(manifest['base_scale']) if manifest['base_scale'] else None) != scale:
        raise TeacherCacheError(
            f'The teacher cache at {cache_dir} was built at base scale {manifest["base_scale"]}, '
            f'the train pipeline resizes around {scale}: rebuild it with '
            f'{_build_command(config, cache_dir)}'
        )


def use_teacher_cache(cfg, config: str) -> dict:
    """With ``model.teacher_cache``: check the cache, then load the cached logits in the train pipeline and
    let its geometric transforms carry them (the ``...WithTeacherLogits`` transforms). Returns the manifest."""
    cache_dir = cfg.model.teacher_cache
    dataset = train_dataset_cfg(cfg)
    pipeline = [dict(t) for t in dataset['pipeline']]
    outputs = cached_outputs(cfg.model)
    manifest = read_manifest(cache_dir)
    check_manifest(manifest, cache_dir, teacher_identity(cfg.model), outputs, config)
    check_base_scale(manifest, cache_dir, base_scale(pipeline), config)
    carried = {
        'Resize': 'ResizeWithTeacherLogits',
        'RandomResize': 'RandomResizeWithTeacherLogits',
        'RandomCrop': 'RandomCropWithTeacherLogits',
        'RandomFlip': 'RandomFlipWithTeacherLogits',
        'PackSegInputs': 'PackSegInputsWithTeacherLogits',
    }
    neutral = {'LoadImageFromFile', 'LoadAnnotations', 'CheckSegLabels', 'PhotoMetricDistortion', *carried.values()}
    unknown = [t['type'] for t in pipeline if t['type'] not in carried and t['type'] not in neutral]
    if unknown:
        raise TeacherCacheError(
            f'The cached teacher logits can follow resizes, crops and flips, not {unknown} in the '
            'train pipeline: remove them, or train with the live teacher (drop teacher_cache)'
        )
    rewritten = []
    for transform in pipeline:
        rewritten.append(dict(transform, type=carried.get(transform['type'], transform['type'])))
        if transform['type'] == 'LoadImageFromFile':
            rewritten.append(
                dict(
                    type='LoadTeacherLogits',
                    cache_dir=cache_dir,
                    img_dir=image_dir(dataset),
                    outputs=outputs,
                    stride=manifest['stride'],
                    config=config,
                )
            )
    cfg.train_dataloader.dataset.pipeline = rewritten
    return manifest
