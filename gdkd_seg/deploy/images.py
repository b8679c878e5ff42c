"""The images the export is checked on: given files or folders, the config's test/val images, or a
deterministic synthetic image; and the config's test size, which the synthetic image and the cost table use."""

import glob
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmengine.config import Config

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def _image_files(paths: Sequence[str]) -> List[str]:
    files = []
    for path in paths:
        if osp.isdir(path):
            found = sorted(
                f for f in glob.glob(osp.join(path, '**', '*'), recursive=True) if f.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise FileNotFoundError(f'No image files ({", ".join(IMAGE_EXTENSIONS)}) under {path!r}')
            files += found
        elif osp.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'Image {path!r} does not exist (pass image files or folders of images)')
    return files


def config_image_files(cfg: Config, limit: int) -> List[str]:
    """Up to ``limit`` images of the config's test (else val) data set, when its folder exists."""
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        folder = osp.join(dataset.get('data_root', ''), (dataset.get('data_prefix') or {}).get('img_path', ''))
        if dataset and osp.isdir(folder):
            files = sorted(glob.glob(osp.join(folder, '**', '*'), recursive=True))
            suffix = dataset.get('img_suffix')
            files = [f for f in files if (f.endswith(suffix) if suffix else f.lower().endswith(IMAGE_EXTENSIONS))]
            if files:
                return files[:limit]
    return []


def synthetic_image(size: Tuple[int, int], seed: int = 0) -> np.ndarray:
    """A deterministic HxWx3 uint8 image: smooth colour fields, rectangles and noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.float32)
    img = mmcv.imresize(coarse, (w, h), interpolation='bicubic')
    for _ in range(6):
        y, x = rng.integers(0, h), rng.integers(0, w)
        img[y : y + rng.integers(h // 8 + 1, h // 2 + 2), x : x + rng.integers(w // 8 + 1, w // 2 + 2)] = rng.uniform(
            0, 255, 3
        )
    img = img + rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def config_test_size(cfg: Config) -> Optional[Tuple[int, int]]:
    """(H, W) of the config's test pipeline: its Resize scale as (short, long) side, landscape (exact for
    Cityscapes' 1024x2048 images; for keep_ratio resizes of other data sets the largest size an image takes).
    None when the pipeline does not resize."""
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        for step in dataset.get('pipeline') or []:
            if step.get('type') == 'Resize' and step.get('scale'):
                w, h = step['scale']
                return (min(w, h), max(w, h)) if step.get('keep_ratio', False) else (h, w)
    return None


@dataclass
class ParityImage:
    name: str
    pixels: np.ndarray  # HxWx3 float32, channels as mmcv.imread loads them


def parity_images(
    cfg: Config, images: Optional[Sequence[str]] = None, size: Optional[Tuple[int, int]] = None, limit: int = 4
) -> List[ParityImage]:
    """The images the export is checked on: ``images`` (files or folders), else up to ``limit`` of the config's
    test/val data, else one deterministic synthetic image (at ``size``, the config's test size or 512x512).
    With ``size`` every image is resized to it."""
    files = _image_files(images)[:limit] if images else config_image_files(cfg, limit)
    if files:
        loaded = [ParityImage(f, mmcv.imread(f, flag='color')) for f in files]
    else:
        shape = size or config_test_size(cfg) or (512, 512)
        loaded = [ParityImage(f'synthetic {shape[0]}x{shape[1]}', synthetic_image(shape))]
    if size is not None:
        loaded = [ParityImage(p.name, mmcv.imresize(p.pixels, (size[1], size[0]))) for p in loaded]
    return [ParityImage(p.name, p.pixels.astype(np.float32)) for p in loaded]


def to_batch(*images: np.ndarray) -> np.ndarray:
    """HxWx3 images -> a contiguous float32 NCHW batch."""
    return np.ascontiguousarray(np.stack([img.transpose(2, 0, 1) for img in images]).astype(np.float32))
