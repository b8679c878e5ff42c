"""Offline teacher logits: run the frozen teacher once over the training set, store its logits, and train
the student from them (``SegDistiller(teacher_cache=DIR)``), so that the teacher costs nothing per step.

    python tools/cache_teacher.py configs/gdkd_deeplabv3_r101_r18_cityscapes.py --out data/teacher_cache/x
    torchrun --nproc_per_node=8 tools/cache_teacher.py CONFIG --out DIR      # sharded over processes

The cache holds, per training image, the logits of every teacher output the config's losses read (the heads'
``conv_seg``), for the whole image at the pipeline's base scale (the ``scale`` of its first
``RandomResize`` / ``Resize``), at the teacher's output resolution, in float16, as
``DIR/logits/<image path under the image folder>.npz``; ``DIR/cache.json`` names the teacher (its config and
checkpoint, hashed), the outputs, the stride and the base scale. A cache is only read for the teacher and
base scale it was built with; a changed teacher is a clear error, never a stale read. The build prints the
disk it needs, shows progress with an ETA and, interrupted, continues where it stopped.

In training (:mod:`gdkd_seg.datasets.teacher_logits`) the logits follow the geometric augmentation of the
image: the loss gets the teacher's logits of exactly the crop the student sees.
"""

import hashlib
import io
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import mmengine
import numpy as np
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar
from mmseg.registry import DATASETS, MODELS

from .datasets.teacher_logits import cache_file
from .models.distiller_base import loss_declarations, resolve_model_cfg
from .models.teacher import FrozenTeacher
from .utils import atomic_write

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


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            digest.update(block)
    return digest.hexdigest()


def teacher_identity(model_cfg) -> dict:
    """What the cache belongs to: the teacher's resolved config (hashed) and its checkpoint (a local file
    by its SHA-256, a URL by itself)."""
    teacher = Config(dict(model=resolve_model_cfg(model_cfg['teacher']))).pretty_text
    checkpoint = model_cfg.get('teacher_checkpoint')
    identity = dict(config_sha1=hashlib.sha1(teacher.encode()).hexdigest(), checkpoint=checkpoint)
    if checkpoint and osp.isfile(checkpoint):
        identity['checkpoint_sha256'] = _file_sha256(checkpoint)
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
    stale = [
        k for k in ('config_sha1', 'checkpoint_sha256') if k in identity and k in built and identity[k] != built[k]
    ]
    if 'checkpoint_sha256' not in identity and identity['checkpoint'] != built['checkpoint']:
        stale.append('checkpoint')
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
                )
            )
    cfg.train_dataloader.dataset.pipeline = rewritten
    return manifest


# ----------------------------------------------------------------------------------------------------------
# building the cache
# ----------------------------------------------------------------------------------------------------------
def _dist_info():
    rank, world = int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('gloo')
    return rank, world


def _save(path: str, arrays: Dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(buffer.getvalue(), path)


def build_teacher_cache(
    config: str, out: Optional[str] = None, options: Optional[dict] = None, device: Optional[str] = None
) -> str:
    """Run the teacher of ``config`` over its training images and store the logits its losses read (see
    the module docstring). Each process of a torchrun takes every ``WORLD_SIZE``-th image; images already
    cached are skipped. Returns the cache folder."""
    from .runner import load_config

    cfg = load_config(config, options)
    if cfg.model.get('type') != 'SegDistiller':
        raise TeacherCacheError(f'{config} is not a SegDistiller config: there is no teacher to cache')
    out = (
        out
        or cfg.model.get('teacher_cache')
        or osp.join('work_dirs', 'teacher_cache', osp.splitext(osp.basename(config))[0])
    )
    outputs = cached_outputs(cfg.model)
    identity = teacher_identity(cfg.model)
    dataset_cfg = train_dataset_cfg(cfg)
    scale = base_scale(dataset_cfg['pipeline'])
    rank, world = _dist_info()
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    device = device or (f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')

    previous = read_manifest(out)
    if previous is not None and previous['teacher'] != identity:
        raise TeacherCacheError(
            f'{out} holds the cache of another teacher ({previous["teacher"]}): use another '
            '--out, or delete that folder'
        )
    resize = [] if scale is None else [dict(type='Resize', scale=scale, keep_ratio=True)]
    loading = [dict(type='LoadImageFromFile'), *resize, dict(type='PackSegInputs')]
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        dataset = DATASETS.build(dict(dataset_cfg, pipeline=loading))
        teacher = FrozenTeacher(
            MODELS.build(resolve_model_cfg(cfg.model.teacher)),
            cfg.model.teacher_checkpoint,
            fp16=cfg.model.get('teacher_fp16', False),
        )
    teacher.record(outputs)
    teacher.load()
    teacher.model.to(device)
    img_dir = image_dir(dataset_cfg)

    todo = [
        i
        for i in range(rank, len(dataset), world)
        if not osp.isfile(cache_file(out, dataset.get_data_info(i)['img_path'], img_dir))
    ]
    manifest = dict(
        version=CACHE_VERSION,
        teacher=identity,
        outputs={},
        stride=None,
        base_scale=list(scale) if scale else None,
        num_images=len(dataset),
        img_dir=img_dir,
        dtype='float16',
        complete=False,
    )
    if rank == 0:
        print(
            f'teacher cache {out}: {len(dataset)} images, {len(dataset) - len(todo) * world} already cached; '
            f'outputs {outputs}',
            flush=True,
        )
    progress = ProgressBar(len(todo), file=sys.stdout) if rank == 0 and todo else None
    for count, index in enumerate(todo):
        data = teacher.model.data_preprocessor(pseudo_collate([dataset[index]]), False)
        logits = teacher(data['inputs'].to(device))
        sample = data['data_samples'][0]
        base_shape = sample.img_shape
        arrays = {name: logits[name][0].cpu().numpy().astype(np.float16) for name in outputs}
        if count == 0:
            _, h, w = arrays[outputs[0]].shape
            manifest.update(stride=round(base_shape[0] / h), outputs={n: arrays[n].shape[0] for n in outputs})
            per_image = sum(a.nbytes for a in arrays.values())
            if rank == 0:
                print(
                    f'about {per_image * len(dataset) / 2**30:.2f} GiB on disk ({per_image / 2**20:.2f} MiB a '
                    f'{base_shape[1]}x{base_shape[0]} image, logits {h}x{w}, stride {manifest["stride"]})',
                    flush=True,
                )
            if previous is None and rank == 0:
                atomic_write(json.dumps(manifest, indent=1).encode(), osp.join(out, MANIFEST))
        _save(cache_file(out, sample.img_path, img_dir), dict(arrays, base_shape=np.array(base_shape)))
        if progress is not None:
            progress.update()
    if world > 1:
        dist.barrier()
    if rank == 0:
        manifest = _finished_manifest(out, manifest, previous, dataset, img_dir, outputs)
        atomic_write(json.dumps(manifest, indent=1).encode(), osp.join(out, MANIFEST))
        print(f'\nteacher cache complete: {out} ({manifest["bytes"] / 2**30:.2f} GiB)', flush=True)
    return out


def _finished_manifest(out, manifest, previous, dataset, img_dir, outputs) -> dict:
    """The manifest of a finished build: every image's file is there (a resumed run fills the sizes in from the
    files it did not write)."""
    files = [cache_file(out, dataset.get_data_info(i)['img_path'], img_dir) for i in range(len(dataset))]
    missing = [f for f in files if not osp.isfile(f)]
    if missing:
        raise TeacherCacheError(f'{len(missing)} images have no cached logits after the build, e.g. {missing[:3]}')
    if manifest['stride'] is None:  # nothing left to compute: all came from an earlier run
        manifest.update(stride=previous['stride'], outputs=previous['outputs'])
    return dict(manifest, complete=True, bytes=sum(osp.getsize(f) for f in files))


# ----------------------------------------------------------------------------------------------------------
# fidelity: cached logits carried through the augmentation against the live teacher on the augmented image
# ----------------------------------------------------------------------------------------------------------
def measure_fidelity(
    config: str, options: Optional[dict] = None, num_images: int = 64, draws: int = 4, seed: int = 0
) -> dict:
    """Mean per-pixel KL(live || cached) of the teacher's softmax and top-1 agreement, over ``draws`` random
    augmentations of ``num_images`` training images of ``config`` (a ``model.teacher_cache`` config whose cache
    is built): the cached logits as the train pipeline carries them, the live teacher run on the same augmented
    image (padded as the student's data preprocessor pads it). Cells of the padding are left out."""
    from .datasets.teacher_logits import teacher_logits_of
    from .runner import load_config

    cfg = load_config(config, options)
    manifest = use_teacher_cache(cfg, config)
    outputs = cached_outputs(cfg.model)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        teacher = FrozenTeacher(MODELS.build(resolve_model_cfg(cfg.model.teacher)), cfg.model.teacher_checkpoint)
        preprocessor = MODELS.build(resolve_model_cfg(cfg.model.student)['data_preprocessor'])
    teacher.record(outputs)
    teacher.load()
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(dataset), size=min(num_images, len(dataset)), replace=False)
    kl_sum, agree, cells = 0.0, 0, 0
    np.random.seed(seed)
    for index in indices:
        for _ in range(draws):
            batch = preprocessor(pseudo_collate([dataset[int(index)]]), True)
            live = teacher(batch['inputs'])[outputs[0]]
            cached = teacher_logits_of(
                batch['data_samples'], outputs[0], batch['inputs'].shape[-2:], manifest['stride']
            )
            h, w = batch['data_samples'][0].img_shape
            h, w = -(-h // manifest['stride']), -(-w // manifest['stride'])
            live, cached = live[0, :, :h, :w], cached[0, :, :h, :w]
            log_live, log_cached = live.log_softmax(0), cached.log_softmax(0)
            kl_sum += float((log_live.exp() * (log_live - log_cached)).sum(0).sum())
            agree += int((live.argmax(0) == cached.argmax(0)).sum())
            cells += h * w
    return dict(mean_kl=kl_sum / cells, top1_agreement=agree / cells, cells=cells, images=len(indices), draws=draws)
