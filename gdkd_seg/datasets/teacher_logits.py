"""Cached teacher logits that follow the augmentation (``SegDistiller(teacher_cache=DIR)``).

``tools/cache_teacher.py`` (:mod:`gdkd_seg.cache_builder`) stores, per training image, the teacher's logits for
the whole image at the pipeline's base scale (see :mod:`.teacher_cache`). :class:`LoadTeacherLogits` loads them
with the image, and the geometric transforms of the train pipeline carry them along: :func:`.use_teacher_cache` swaps
``Resize``, ``RandomResize``, ``RandomCrop``, ``RandomFlip`` and ``PackSegInputs`` for the subclasses
below, which do what MMSeg's do to the image and update where the current image lies on the cached
logits. No logit is resampled until the end: :class:`PackSegInputsWithTeacherLogits` samples the cached
logits once, bilinearly, at the centres of the teacher's output cells of the final image, so that the
loss gets the teacher's logits for exactly the crop the student sees (a resize is bilinear on the logits,
a crop the same box at the logits' scale, a flip the same flip). Photometric transforms do not apply:
the cached teacher saw the clean image.
"""

import math
import os.path as osp
import zipfile
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform, RandomFlip, RandomResize, Resize
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs, RandomCrop
from mmseg.registry import TRANSFORMS

from .teacher_cache import TeacherCacheError

CACHE_SUFFIX = '.npz'


class TeacherLogits:
    """Cached logits ``{output name: (C, h, w) float16}`` and where the current image lies on them: a point
    ``(x, y)`` of the image (continuous pixel coordinates, pixel ``i`` covering ``[i, i + 1)``) is the point
    ``(ax * x + bx, ay * y + by)`` of the logit grid (cell ``j`` covering ``[j, j + 1)``)."""

    def __init__(self, arrays: Dict[str, np.ndarray], stride: float, scale_x: float, scale_y: float):
        self.arrays = arrays
        self.stride = stride
        self.ax, self.bx = scale_x / stride, 0.0
        self.ay, self.by = scale_y / stride, 0.0

    def resized(self, old_shape, new_shape) -> None:
        """The image went from ``old_shape`` to ``new_shape`` (h, w), edges to edges."""
        self.ax *= old_shape[1] / new_shape[1]
        self.ay *= old_shape[0] / new_shape[0]

    def cropped(self, y1: int, x1: int) -> None:
        self.bx += self.ax * x1
        self.by += self.ay * y1

    def flipped(self, direction: str, shape) -> None:
        height, width = shape[:2]
        if direction in ('horizontal', 'diagonal'):
            self.bx, self.ax = self.bx + self.ax * width, -self.ax
        if direction in ('vertical', 'diagonal'):
            self.by, self.ay = self.by + self.ay * height, -self.ay

    def _is_identity(self, out_h: int, out_w: int) -> bool:
        return (
            self.ax * self.stride == 1.0
            and self.ay * self.stride == 1.0
            and self.bx == 0.0
            and self.by == 0.0
            and all(array.shape[1:] == (out_h, out_w) for array in self.arrays.values())
        )

    def sample(self, shape) -> Dict[str, torch.Tensor]:
        """The logits of an image of ``shape`` (h, w) as the teacher would output them: ``ceil(h / stride)`` x
        ``ceil(w / stride)`` cells, each the cached logits at the cell's centre (bilinear)."""
        out_h, out_w = math.ceil(shape[0] / self.stride), math.ceil(shape[1] / self.stride)
        if self._is_identity(out_h, out_w):
            # the image is the cached one, unresized and uncropped: the cells are the cached ones
            return {name: torch.tensor(array, dtype=torch.float16) for name, array in self.arrays.items()}
        xs = self.ax * (torch.arange(out_w, dtype=torch.float64) + 0.5) * self.stride + self.bx
        ys = self.ay * (torch.arange(out_h, dtype=torch.float64) + 0.5) * self.stride + self.by
        sampled = {}
        for name, array in self.arrays.items():
            _, h, w = array.shape
            grid = torch.stack(torch.meshgrid(2 * ys / h - 1, 2 * xs / w - 1, indexing='ij')[::-1], dim=-1)
            logits = torch.from_numpy(np.asarray(array, dtype=np.float32))[None]
            sampled[name] = F.grid_sample(
                logits, grid[None].float(), mode='bilinear', padding_mode='border', align_corners=False
            )[0].to(torch.float16)
        return sampled


def cache_file(cache_dir: str, img_path: str, img_dir: str) -> str:
    """Where the logits of ``img_path`` (an image under ``img_dir``) are cached."""
    relative = osp.splitext(osp.relpath(img_path, img_dir))[0]
    if relative.startswith('..'):
        raise ValueError(f"{img_path} is not under the data set's image folder {img_dir}")
    return osp.join(cache_dir, 'logits', relative + CACHE_SUFFIX)


@TRANSFORMS.register_module()
class LoadTeacherLogits(BaseTransform):
    """Load the cached teacher logits of ``results['img_path']`` (after ``LoadImageFromFile``) as
    ``results['teacher_logits']`` (:class:`TeacherLogits`).

    Args:
        cache_dir (str): the cache of ``tools/cache_teacher.py``.
        img_dir (str): the data set's image folder (the cache is keyed by the path under it).
        outputs (Sequence[str]): the teacher outputs to load (e.g. ``'decode_head.conv_seg'``).
        stride (float): the teacher's output stride (the cache's).
        memory_mb (float): how many MB of logits each data-loading process keeps in memory once read, so that
            later epochs do not read them again; a cache larger than that (Cityscapes' is GBs) is read from
            disk for the rest. 0: read every time.
    """

    def __init__(
        self,
        cache_dir: str,
        img_dir: str,
        outputs: Sequence[str],
        stride: float,
        config: str = 'CONFIG',
        memory_mb: float = 256,
    ):
        self.cache_dir, self.img_dir, self.outputs, self.stride = cache_dir, img_dir, list(outputs), stride
        self.rebuild = f'python tools/cache_teacher.py {config} --out {cache_dir}'
        self.memory_bytes = memory_mb * 2**20
        self._kept: Dict[str, tuple] = {}
        self._kept_bytes = 0

    def transform(self, results: dict) -> dict:
        path = cache_file(self.cache_dir, results['img_path'], self.img_dir)
        arrays, (base_h, base_w) = self._kept.get(path) or self._read_and_keep(path, results['img_path'])
        height, width = results['img'].shape[:2]
        results['teacher_logits'] = TeacherLogits(arrays, self.stride, base_w / width, base_h / height)
        return results

    def _read_and_keep(self, path: str, img_path: str) -> tuple:
        if not osp.isfile(path):
            raise TeacherCacheError(
                f'The teacher cache {self.cache_dir} has no logits for {img_path} ({path}): it was built for other '
                f'images. Rebuild it with {self.rebuild}'
            )
        entry = self._read(path)
        size = sum(array.nbytes for array in entry[0].values())
        if self._kept_bytes + size <= self.memory_bytes:
            self._kept[path] = entry
            self._kept_bytes += size
        return entry

    def _read(self, path: str):
        """The cached logits of the outputs and the base shape; a damaged file is named, with the command that
        rebuilds it (the build checks every file and redoes the damaged ones)."""
        try:
            with np.load(path) as cached:
                missing = [name for name in self.outputs if name not in cached]
                if missing:
                    raise TeacherCacheError(
                        f'{path} holds no logits of {missing}: the cache was built for other losses; rebuild it '
                        f'with {self.rebuild}'
                    )
                return {name: cached[name] for name in self.outputs}, tuple(int(v) for v in cached['base_shape'])
        except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as err:
            raise TeacherCacheError(
                f'The cached teacher logits {path} are damaged ({type(err).__name__}: {err}), e.g. by an interrupted '
                f'copy: run {self.rebuild} (it rebuilds damaged files and keeps the others)'
            ) from err

    def __repr__(self):
        return f'{type(self).__name__}(cache_dir={self.cache_dir!r}, outputs={self.outputs})'


class _CarryTeacherLogits:
    """Mixin of the resizing transforms: after the image is resized, so is its box on the cached logits."""

    def transform(self, results: dict) -> dict:
        old_shape = results['img'].shape[:2]
        results = super().transform(results)
        if 'teacher_logits' in results:
            results['teacher_logits'].resized(old_shape, results['img'].shape[:2])
        return results


@TRANSFORMS.register_module()
class ResizeWithTeacherLogits(_CarryTeacherLogits, Resize):
    """mmcv's ``Resize``, carrying the cached teacher logits."""


@TRANSFORMS.register_module()
class RandomResizeWithTeacherLogits(_CarryTeacherLogits, RandomResize):
    """mmcv's ``RandomResize``, carrying the cached teacher logits."""


@TRANSFORMS.register_module()
class RandomCropWithTeacherLogits(RandomCrop):
    """MMSeg's ``RandomCrop``, carrying the cached teacher logits (the same box at their scale)."""

    def crop_bbox(self, results: dict) -> tuple:
        box = super().crop_bbox(results)
        results['_teacher_crop_box'] = box  # the one transform() crops with: it calls crop_bbox once
        return box

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        y1, _, x1, _ = results.pop('_teacher_crop_box')
        if 'teacher_logits' in results:
            results['teacher_logits'].cropped(y1, x1)
        return results


@TRANSFORMS.register_module()
class RandomFlipWithTeacherLogits(RandomFlip):
    """mmcv's ``RandomFlip``, carrying the cached teacher logits (the same flip)."""

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        if results.get('flip') and 'teacher_logits' in results:
            results['teacher_logits'].flipped(results['flip_direction'], results['img'].shape)
        return results


@TRANSFORMS.register_module()
class PackSegInputsWithTeacherLogits(PackSegInputs):
    """MMSeg's ``PackSegInputs``; the data sample also carries ``teacher_logits`` (a ``PixelData`` with one
    ``(C, ceil(h / stride), ceil(w / stride))`` float16 field per cached teacher output)."""

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        logits = results['teacher_logits'].sample(results['img'].shape[:2])
        packed['data_samples'].teacher_logits = PixelData(**{_field(name): v for name, v in logits.items()})
        return packed


def _field(name: str) -> str:
    """A PixelData field name for a module name (``decode_head.conv_seg`` -> ``decode_head__conv_seg``)."""
    return name.replace('.', '__')


def teacher_logits_of(data_samples, name: str, padded_shape, stride: float) -> torch.Tensor:
    """``(N, C, ceil(H / stride), ceil(W / stride))`` float32 logits of ``name`` for a batch padded to
    ``padded_shape`` (H, W); the padded cells are 0 (their labels are the ignore index)."""
    out_h, out_w = math.ceil(padded_shape[0] / stride), math.ceil(padded_shape[1] / stride)
    rows = []
    for sample in data_samples:
        if 'teacher_logits' not in sample:
            raise KeyError(
                'The batch carries no cached teacher logits: with model.teacher_cache, train through '
                'tools/train.py / gdkd_seg.runner.train, which add LoadTeacherLogits to the train '
                'pipeline'
            )
        logits = getattr(sample.teacher_logits, _field(name)).float()
        rows.append(F.pad(logits, (0, out_w - logits.shape[-1], 0, out_h - logits.shape[-2])))
    return torch.stack(rows)
