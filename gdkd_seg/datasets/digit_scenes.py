"""Digit scenes: a small real-data segmentation task built from scikit-learn's handwritten digits.

Each scene pastes several of the 1,797 real 8x8 scans of ``sklearn.datasets.load_digits`` (no download),
rescaled to varied sizes, in inks of varied hues and with overlap, onto textured paper with non-digit
clutter (thin strokes and arcs, stains) and noise. A pixel's label is the class of the digit whose ink covers it
(1 + digit) or background (0), so the label follows the handwriting. Train and val scenes draw on
disjoint sets of scans (a stratified split), so val measures recognition of unseen handwriting.

:func:`prepare_digit_scenes` writes the scenes once in MMSeg's ``img_dir/{train,val}`` +
``ann_dir/{train,val}`` layout and regenerates them only when the generator version or a setting changes;
:class:`DigitScenesDataset` reads them.
"""

import json
import os
import os.path as osp
import shutil
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import mmengine
import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

# Bump whenever a change to this file changes the pixels: cached scenes with another version are rebuilt.
GENERATOR_VERSION = 2

CLASSES = ('background', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
PALETTE = [
    [0, 0, 0],
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
]

# Digits of 28-38 px keep their strokes several pixels wide, so that models with 1/8-resolution logits
# (8x8 for a 64x64 scene) can follow the handwriting (tools/resolution_ceiling.py measures how well they
# can at best). How the sizes and the 8,000 train scenes were chosen: docs/demo.md.
DEFAULT_SETTINGS = dict(
    seed=0,
    size=64,
    num_train=8000,
    num_val=400,
    val_fraction=0.3,
    num_digits=(1, 3),
    digit_size=(28, 38),
    ink_threshold=0.3,
    max_overlap=0.15,
    num_clutter=(0, 3),
    noise_std=(3.0, 10.0),
)
NON_SCENE_SETTINGS = ('seed', 'num_train', 'num_val', 'val_fraction', 'generator_version')
META_FILE = 'digit_scenes.json'


class PlacedDigit(NamedTuple):
    """One digit pasted into a scene: its class, the scan it came from, where, and in which colour."""

    digit: int
    scan: int
    box: Tuple[int, int, int, int]  # y0, x0, height, width
    colour: Tuple[int, int, int]


def load_digit_scans() -> Tuple[np.ndarray, np.ndarray]:
    """The 1,797 scans of ``sklearn.datasets.load_digits`` as ``(N, 8, 8)`` floats in [0, 1], and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target.astype(np.int64)


def split_scans(targets: np.ndarray, val_fraction: float, seed: int) -> Dict[str, np.ndarray]:
    """Disjoint train/val scan indices, stratified so each digit keeps the same val share."""
    if not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    rng = np.random.default_rng(seed)
    train, val = [], []
    for digit in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == digit))
        n_val = max(1, int(round(len(idx) * val_fraction)))
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return dict(train=np.sort(np.concatenate(train)), val=np.sort(np.concatenate(val)))


def _smooth_noise(rng, size: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a random ``cells x cells`` grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(size, size, channels)


def scene_background(rng, size: int) -> np.ndarray:
    """Paper: a light base colour with blotches and faint stripes."""
    img = rng.uniform(150, 235, 3).astype(np.float32) + 25 * _smooth_noise(rng, size, rng.integers(3, 7), 3)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    img += rng.uniform(0, 12) * stripes[..., None]
    return img


def ink_colour(rng) -> np.ndarray:
    """A dark ink of any hue."""
    return rng.uniform(0, 120, 3).astype(np.float32)


def blend_ink(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray, y: int, x: int) -> None:
    h, w = alpha.shape
    patch = img[y : y + h, x : x + w]
    patch[:] = patch * (1 - alpha[..., None]) + colour * alpha[..., None]


def draw_clutter(rng, img: np.ndarray) -> None:
    """A non-digit mark, labelled background: a thin ink stroke or arc, or a mid-tone stain."""
    size = img.shape[0]
    canvas = np.zeros((size, size), np.float32)
    kind = rng.integers(3)
    p = [int(v) for v in rng.integers(0, size, 4)]
    thickness = int(rng.integers(1, 4))
    colour = ink_colour(rng)
    if kind == 0:
        cv2.line(canvas, (p[0], p[1]), (p[2], p[3]), 1.0, thickness, cv2.LINE_AA)
    elif kind == 1:
        axes = (int(rng.integers(5, 14)), int(rng.integers(5, 14)))
        cv2.ellipse(
            canvas,
            (p[0], p[1]),
            axes,
            float(rng.uniform(0, 180)),
            0,
            float(rng.uniform(120, 360)),
            1.0,
            thickness,
            cv2.LINE_AA,
        )
    else:
        cv2.circle(canvas, (p[0], p[1]), int(rng.integers(3, 9)), 1.0, -1, cv2.LINE_AA)
        colour = rng.uniform(90, 180, 3).astype(np.float32)
    blend_ink(img, np.clip(canvas, 0, 1), colour, 0, 0)


def render_scene(
    rng: np.random.Generator,
    scans: np.ndarray,
    targets: np.ndarray,
    pool: Sequence[int],
    *,
    size: int,
    num_digits,
    digit_size,
    ink_threshold: float,
    max_overlap: float,
    num_clutter,
    noise_std,
) -> Tuple[np.ndarray, np.ndarray, List[PlacedDigit]]:
    """One scene from the scans in ``pool``: ``(image HxWx3 uint8 RGB, label HxW uint8, placed digits)``.

    The settings are those of ``DEFAULT_SETTINGS``; ranges are inclusive ``(low, high)``. A digit's ink (and
    label) is where its rescaled scan exceeds ``ink_threshold`` of full ink. Digits are pasted in order, so
    a later digit's ink covers (and relabels) an earlier one's.
    """
    img = scene_background(rng, size)
    label = np.zeros((size, size), np.uint8)
    placed = []
    for _ in range(rng.integers(num_clutter[0], num_clutter[1] + 1)):
        draw_clutter(rng, img)
    for _ in range(rng.integers(num_digits[0], num_digits[1] + 1)):
        scan = int(rng.choice(pool))
        h = int(rng.integers(digit_size[0], min(digit_size[1], size) + 1))
        w = int(np.clip(round(h * rng.uniform(0.75, 1.15)), 8, size))
        ink, alpha = digit_ink(scans[scan], h, w, ink_threshold)
        # Keep most of every earlier digit visible: no placement may cover more than max_overlap of an
        # earlier box (after 50 tries the last one is taken).
        for _ in range(50):
            y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            if all(_overlap((y, x, h, w), d.box) <= max_overlap for d in placed):
                break
        colour = ink_colour(rng)
        blend_ink(img, alpha, colour, y, x)
        label[y : y + h, x : x + w][ink] = targets[scan] + 1
        placed.append(PlacedDigit(int(targets[scan]), scan, (y, x, h, w), tuple(int(c) for c in colour)))
    return add_noise(rng, img, noise_std), label, placed


def digit_ink(scan: np.ndarray, h: int, w: int, ink_threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    """A scan rescaled to ``h x w``: its ink mask (where it exceeds ``ink_threshold`` of full ink) and the alpha
    to paste it with, opaque wherever it is ink and anti-aliased just outside."""
    scan_ink = np.clip(cv2.resize(scan.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
    return scan_ink > ink_threshold, np.clip((scan_ink - ink_threshold) / 0.1 + 1, 0, 1)


def add_noise(rng, img: np.ndarray, noise_std) -> np.ndarray:
    """``img`` plus Gaussian noise of a std drawn from ``noise_std``, rounded to uint8."""
    sigma = rng.uniform(*noise_std)
    if sigma > 0:
        img = img + rng.normal(0, sigma, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _overlap(box: Tuple[int, ...], other: Tuple[int, ...]) -> float:
    """The share of ``other``'s area that ``box`` covers."""
    (y0, x0, h0, w0), (y1, x1, h1, w1) = box, other
    dy = max(0, min(y0 + h0, y1 + h1) - max(y0, y1))
    dx = max(0, min(x0 + w0, x1 + w1) - max(x0, x1))
    return dy * dx / (h1 * w1)


def generate_split(split: str, count: int, settings: dict, scans=None, targets=None):
    """Yield ``(image, label, placed)`` for the ``count`` scenes of ``split`` ('train' or 'val')."""
    if scans is None:
        scans, targets = load_digit_scans()
    pool = split_scans(targets, settings['val_fraction'], settings['seed'])[split]
    # One independent stream per split, so the val scenes do not change with num_train.
    rng = np.random.default_rng([settings['seed'], ('train', 'val').index(split)])
    scene_args = {k: v for k, v in settings.items() if k not in NON_SCENE_SETTINGS}
    for _ in range(count):
        yield render_scene(rng, scans, targets, pool, **scene_args)


def _settings(**overrides) -> dict:
    unknown = set(overrides) - set(DEFAULT_SETTINGS)
    if unknown:
        raise TypeError(f'Unknown digit-scene settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}')
    settings = dict(DEFAULT_SETTINGS, **overrides)
    # JSON round trip, so the settings compare equal to the ones read back from the meta file.
    return json.loads(json.dumps(dict(settings, generator_version=GENERATOR_VERSION)))


def read_meta(root: str) -> Optional[dict]:
    path = osp.join(root, META_FILE)
    return mmengine.load(path) if osp.isfile(path) else None


def prepare_digit_scenes(root: str, force: bool = False, **settings) -> Tuple[str, bool]:
    """Write the scenes to ``root`` unless an identical version is already there.

    Returns ``(root, generated)``. The scenes are written to a temporary sibling folder that replaces
    ``root`` once complete, so an interrupted run never leaves a half-written data set behind.
    """
    settings = _settings(**settings)
    if not force and read_meta(root) == settings:
        return root, False
    if osp.exists(root) and not osp.isfile(osp.join(root, META_FILE)) and os.listdir(root):
        raise FileExistsError(
            f'{root!r} exists and is not a digit-scenes folder (no {META_FILE}); remove it or choose another data root'
        )
    tmp = root.rstrip('/\\') + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    scans, targets = load_digit_scans()
    for split in ('train', 'val'):
        img_dir, ann_dir = osp.join(tmp, 'img_dir', split), osp.join(tmp, 'ann_dir', split)
        os.makedirs(img_dir)
        os.makedirs(ann_dir)
        count = settings[f'num_{split}']
        for i, (img, label, _) in enumerate(generate_split(split, count, settings, scans, targets)):
            Image.fromarray(img).save(osp.join(img_dir, f'{i:05d}.png'))
            Image.fromarray(label).save(osp.join(ann_dir, f'{i:05d}.png'))
    with open(osp.join(tmp, META_FILE), 'w') as f:
        json.dump(settings, f, indent=1)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root, True


@DATASETS.register_module()
class DigitScenesDataset(BaseSegDataset):
    """Digit scenes in MMSeg's layout (see :func:`prepare_digit_scenes`): 11 classes, background = 0."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False, **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=reduce_zero_label, **kwargs
        )
