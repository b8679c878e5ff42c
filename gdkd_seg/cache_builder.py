"""Build the offline teacher cache: run the frozen teacher once over the training set and store the logits its
losses read, so that ``SegDistiller(teacher_cache=DIR)`` trains without building or running the teacher
(the cache's layout and checks: :mod:`gdkd_seg.datasets.teacher_cache`).

    python tools/cache_teacher.py configs/gdkd_deeplabv3_r101_r18_cityscapes.py --out data/teacher_cache/x
    torchrun --nproc_per_node=8 tools/cache_teacher.py CONFIG --out DIR      # sharded over processes

The build prints the disk it needs, shows progress with an ETA and, interrupted, continues where it stopped.
:func:`measure_fidelity` compares the cached logits, carried through the augmentation, with the live teacher.
"""

import io
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import barrier, get_dist_info, init_dist, is_distributed, is_main_process
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar
from mmseg.registry import DATASETS, MODELS
from torch.utils.data import DataLoader, Subset

from .config import load_config, resolve_model_cfg
from .datasets.teacher_cache import (
    CACHE_VERSION,
    MANIFEST,
    TeacherCacheError,
    base_scale,
    cached_outputs,
    image_dir,
    is_cached,
    read_manifest,
    teacher_differs,
    teacher_identity,
    train_dataset_cfg,
    use_teacher_cache,
)
from .datasets.teacher_logits import cache_file, teacher_logits_of
from .models.teacher import FrozenTeacher
from .utils import atomic_write


def _init_distributed() -> Tuple[int, int]:
    """Under torchrun, join the process group (MMEngine's ``init_dist`` with CUDA; gloo on CPU, where
    ``init_dist`` would select a CUDA device); ``(rank, world size)`` from ``mmengine.dist``."""
    if int(os.environ.get('WORLD_SIZE', 1)) > 1 and not is_distributed():
        if torch.cuda.is_available():
            init_dist('pytorch')
        else:
            torch.distributed.init_process_group('gloo')
    return get_dist_info()


def _save(path: str, arrays: Dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(buffer.getvalue(), path)


def _write_manifest(manifest: dict, out: str) -> None:
    atomic_write(json.dumps(manifest, indent=1).encode(), osp.join(out, MANIFEST))


def _default_out(cfg, config: str) -> str:
    return cfg.model.get('teacher_cache') or osp.join(
        'work_dirs', 'teacher_cache', osp.splitext(osp.basename(config))[0]
    )


def _image_dataset(cfg, dataset_cfg: dict, scale: Optional[tuple]):
    """The train images, resized to the base scale, unaugmented."""
    resize = [] if scale is None else [dict(type='Resize', scale=scale, keep_ratio=True)]
    loading = [dict(type='LoadImageFromFile'), *resize, dict(type='PackSegInputs')]
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        return DATASETS.build(dict(dataset_cfg, pipeline=loading))


def _loaded_teacher(cfg, outputs: List[str], device: str, fp16: bool = False) -> FrozenTeacher:
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        teacher = FrozenTeacher(
            MODELS.build(resolve_model_cfg(cfg.model.teacher)), cfg.model.teacher_checkpoint, fp16=fp16
        )
    teacher.capture(outputs)
    teacher.load()
    teacher.model.to(device)
    return teacher


def build_teacher_cache(
    config: str,
    out: Optional[str] = None,
    options: Optional[dict] = None,
    device: Optional[str] = None,
    num_workers: int = 2,
) -> str:
    """Run the teacher of ``config`` over its training images and store the logits its losses read (see
    the module docstring). Each process of a torchrun takes every ``WORLD_SIZE``-th image; images already
    cached are skipped. Returns the cache folder."""
    cfg = load_config(config, options)
    if cfg.model.get('type') != 'SegDistiller':
        raise TeacherCacheError(f'{config} is not a SegDistiller config: there is no teacher to cache')
    out = out or _default_out(cfg, config)
    outputs, identity = cached_outputs(cfg.model), teacher_identity(cfg.model)
    dataset_cfg = train_dataset_cfg(cfg)
    scale = base_scale(dataset_cfg['pipeline'])
    previous = read_manifest(out)
    if previous is not None and teacher_differs(previous['teacher'], identity):
        raise TeacherCacheError(
            f'{out} holds the cache of another teacher ({previous["teacher"]}): use another --out, or delete '
            'that folder'
        )
    rank, world = _init_distributed()
    device = device or (f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available() else 'cpu')
    dataset = _image_dataset(cfg, dataset_cfg, scale)
    img_dir = image_dir(dataset_cfg)
    todo = [
        i for i in range(rank, len(dataset), world) if not is_cached(cache_file(out, _img_path(dataset, i), img_dir))
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
    if is_main_process():
        print(
            f'teacher cache {out}: {len(dataset)} images, {len(dataset) - len(todo) * world} already cached; '
            f'outputs {outputs}',
            flush=True,
        )
    if todo:
        teacher = _loaded_teacher(cfg, outputs, device, cfg.model.get('teacher_fp16', False))
        loader = DataLoader(Subset(dataset, todo), batch_size=1, num_workers=num_workers, collate_fn=pseudo_collate)
        _cache_images(teacher, loader, outputs, out, img_dir, manifest, write_manifest=previous is None)
    barrier()
    if is_main_process():
        manifest = _finished_manifest(out, manifest, previous, dataset, img_dir)
        _write_manifest(manifest, out)
        print(f'\nteacher cache complete: {out} ({manifest["bytes"] / 2**30:.2f} GiB)', flush=True)
    return out


def _img_path(dataset, index: int) -> str:
    return dataset.get_data_info(index)['img_path']


def _cache_images(teacher, loader, outputs, out, img_dir, manifest, write_manifest) -> None:
    """Run the teacher on each batch of ``loader`` and save its logits; the first image fixes the stride and
    the class counts in ``manifest`` (written at once when ``write_manifest``, so an interrupted build is
    recognised as this teacher's)."""
    device = next(teacher.model.parameters()).device
    progress = ProgressBar(len(loader), file=sys.stdout) if is_main_process() else None
    for count, batch in enumerate(loader):
        data = teacher.model.data_preprocessor(batch, False)
        logits = teacher(data['inputs'].to(device))
        sample = data['data_samples'][0]
        arrays = {name: logits[name][0].cpu().numpy().astype(np.float16) for name in outputs}
        if count == 0:
            _describe_first(manifest, arrays, outputs, sample.img_shape, len(loader.dataset.dataset))
            if write_manifest and is_main_process():
                _write_manifest(manifest, out)
        _save(cache_file(out, sample.img_path, img_dir), dict(arrays, base_shape=np.array(sample.img_shape)))
        if progress is not None:
            progress.update()


def _describe_first(manifest: dict, arrays: dict, outputs: List[str], base_shape, num_images: int) -> None:
    _, h, w = arrays[outputs[0]].shape
    manifest.update(stride=round(base_shape[0] / h), outputs={n: arrays[n].shape[0] for n in outputs})
    per_image = sum(a.nbytes for a in arrays.values())
    if is_main_process():
        print(
            f'about {per_image * num_images / 2**30:.2f} GiB on disk ({per_image / 2**20:.2f} MiB a '
            f'{base_shape[1]}x{base_shape[0]} image, logits {h}x{w}, stride {manifest["stride"]})',
            flush=True,
        )


def _finished_manifest(out, manifest, previous, dataset, img_dir) -> dict:
    """The manifest of a finished build: every image's file is there (a resumed run fills the sizes in from the
    files it did not write)."""
    files = [cache_file(out, _img_path(dataset, i), img_dir) for i in range(len(dataset))]
    missing = [f for f in files if not is_cached(f)]
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

    cfg = load_config(config, options)
    manifest = use_teacher_cache(cfg, config)
    output = cached_outputs(cfg.model)[0]
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        preprocessor = MODELS.build(resolve_model_cfg(cfg.model.student)['data_preprocessor'])
    teacher = _loaded_teacher(cfg, [output], 'cpu')
    indices = np.random.default_rng(seed).choice(len(dataset), size=min(num_images, len(dataset)), replace=False)
    kl_sum, agree, cells = 0.0, 0, 0
    np.random.seed(seed)
    for index in indices:
        for _ in range(draws):
            batch = preprocessor(pseudo_collate([dataset[int(index)]]), True)
            live = teacher(batch['inputs'])[output]
            cached = teacher_logits_of(batch['data_samples'], output, batch['inputs'].shape[-2:], manifest['stride'])
            kl, same, count = _compare(live[0], cached[0], batch['data_samples'][0].img_shape, manifest['stride'])
            kl_sum, agree, cells = kl_sum + kl, agree + same, cells + count
    return dict(mean_kl=kl_sum / cells, top1_agreement=agree / cells, cells=cells, images=len(indices), draws=draws)


def _compare(live, cached, img_shape, stride) -> Tuple[float, int, int]:
    """Summed KL(live || cached), top-1 agreements and cell count over the cells of the image (not the padding)."""
    h, w = -(-img_shape[0] // stride), -(-img_shape[1] // stride)
    live, cached = live[:, :h, :w], cached[:, :h, :w]
    log_live, log_cached = live.log_softmax(0), cached.log_softmax(0)
    kl = float((log_live.exp() * (log_live - log_cached)).sum(0).sum())
    return kl, int((live.argmax(0) == cached.argmax(0)).sum()), h * w
