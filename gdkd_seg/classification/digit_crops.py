"""Hard digit crops: a 10-class classification task on the digit scenes' handwriting, made for a teacher to have
something to transfer to a small student (docs/pretraining.md).

Each crop is centred (give or take a few pixels) on one real scan of ``sklearn.datasets.load_digits``, and its
label is that scan's digit. Around it, parts of neighbour digits reach into the crop; clutter strokes, arcs and
stains lie under and over the digits, on the digit scenes' textured paper, in inks of any hue; the crop is then
downsampled and upsampled back (low resolution) and noised. The drawing is the digit scenes'
(:mod:`gdkd_seg.datasets.digit_scenes`), and so is the train/val split of the scans: with the default
``split_seed`` and ``val_fraction`` the train crops use only the digit scenes' train scans, so a backbone
pretrained on them has never seen the handwriting of the segmentation val scenes.
"""

from typing import List, Optional, Tuple

import cv2
import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

from ..datasets.digit_scenes import (
    PlacedDigit,
    add_noise,
    blend_ink,
    digit_ink,
    draw_clutter,
    ink_colour,
    load_digit_scans,
    scene_background,
    split_scans,
)

# Ranges are inclusive (low, high). Sizes are in pixels of the crop; low_res is the side the crop is shrunk to
# before it is enlarged back (None: full resolution). How they were chosen: docs/pretraining.md.
DEFAULT_CROP_SETTINGS = dict(
    digit_size=(18, 26),
    jitter=3,
    num_neighbours=(1, 3),
    neighbour_distance=(0.55, 0.9),
    num_clutter=(1, 3),
    num_clutter_over=(0, 1),
    noise_std=(4.0, 14.0),
    low_res=(12, 20),
    ink_threshold=0.3,
)
DEFAULT_NUM = dict(train=8000, val=1000)
SPLITS = ('train', 'val')
_STREAM = 7  # keeps the crops' random stream apart from the digit scenes' ([seed, split])


def crop_settings(**overrides) -> dict:
    unknown = set(overrides) - set(DEFAULT_CROP_SETTINGS)
    if unknown:
        raise TypeError(f'Unknown digit-crop settings {sorted(unknown)}; known: {sorted(DEFAULT_CROP_SETTINGS)}')
    return dict(DEFAULT_CROP_SETTINGS, **overrides)


def _digit_shape(rng, digit_size) -> Tuple[int, int]:
    h = int(rng.integers(digit_size[0], digit_size[1] + 1))
    return h, max(8, int(round(h * rng.uniform(0.75, 1.15))))


def _paste(rng, img, scans, scan, y, x, h, w, ink_threshold):
    """Paste scan ``scan`` as an ``h x w`` box at ``(y, x)`` in a random ink; only the part of the box inside
    ``img`` is drawn (neighbours reach in from outside). Returns the ink colour."""
    colour = ink_colour(rng)
    alpha = digit_ink(scans[scan], h, w, ink_threshold)[1]
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, img.shape[0]), min(x + w, img.shape[1])
    if y1 > y0 and x1 > x0:
        blend_ink(img, alpha[y0 - y : y1 - y, x0 - x : x1 - x], colour, y0, x0)
    return colour


def render_crop(
    rng: np.random.Generator,
    scans: np.ndarray,
    targets: np.ndarray,
    pool,
    size: int,
    settings: dict,
) -> Tuple[np.ndarray, PlacedDigit]:
    """One ``size x size x 3`` uint8 RGB crop centred on a scan of ``pool``, and that digit (box in the crop)."""
    s = settings
    img = scene_background(rng, size)
    for _ in range(rng.integers(s['num_clutter'][0], s['num_clutter'][1] + 1)):
        draw_clutter(rng, img)
    scan = int(rng.choice(pool))
    h, w = _digit_shape(rng, s['digit_size'])
    cy, cx = (size // 2 + int(v) for v in rng.integers(-s['jitter'], s['jitter'] + 1, 2))  # its centre
    for _ in range(rng.integers(s['num_neighbours'][0], s['num_neighbours'][1] + 1)):
        nh, nw = _digit_shape(rng, s['digit_size'])
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(*s['neighbour_distance'])
        ny = round(cy + np.sin(angle) * dist * (h + nh) / 2 - nh / 2)
        nx = round(cx + np.cos(angle) * dist * (w + nw) / 2 - nw / 2)
        _paste(rng, img, scans, int(rng.choice(pool)), ny, nx, nh, nw, s['ink_threshold'])
    y, x = cy - h // 2, cx - w // 2
    colour = _paste(rng, img, scans, scan, y, x, h, w, s['ink_threshold'])
    for _ in range(rng.integers(s['num_clutter_over'][0], s['num_clutter_over'][1] + 1)):
        draw_clutter(rng, img)
    if s['low_res'] is not None:
        side = int(rng.integers(s['low_res'][0], s['low_res'][1] + 1))
        small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    centre = PlacedDigit(int(targets[scan]), scan, (y, x, h, w), tuple(int(c) for c in colour))
    return add_noise(rng, img, s['noise_std']), centre


def generate_crops(split: str, num: int, size: int, seed: int, split_seed: int, val_fraction: float, **settings):
    """``(images N x size x size x 3 uint8 RGB, centre digits)`` of ``split``; one random stream per split, so
    the val crops do not change with the number of train crops."""
    if split not in SPLITS:
        raise ValueError(f'digit crops: split must be one of {SPLITS}, got {split!r}')
    settings = crop_settings(**settings)
    scans, targets = load_digit_scans()
    pool = split_scans(targets, val_fraction, split_seed)[split]
    rng = np.random.default_rng([seed, SPLITS.index(split), _STREAM])
    crops = [render_crop(rng, scans, targets, pool, size, settings) for _ in range(num)]
    images = np.stack([c[0] for c in crops]) if crops else np.zeros((0, size, size, 3), np.uint8)
    return images, [c[1] for c in crops]


@DATASETS.register_module()
class DigitCropsClsDataset(BaseDataset):
    """Hard digit crops (see the module) generated in memory at construction: ``num`` crops of ``size`` x
    ``size`` (default 8,000 train / 1,000 val, 32 x 32), deterministic from ``seed``; the scans of
    ``split='train'`` and ``'val'`` are disjoint (``split_scans(targets, val_fraction, split_seed)``, the digit
    scenes' split by default). ``settings`` overrides ``DEFAULT_CROP_SETTINGS``. Images are HxWx3 uint8 in BGR
    order, as ``LoadImageFromFile`` gives them (the classification configs' ``to_rgb=True`` makes them RGB, as
    the segmentation configs' ``bgr_to_rgb=True`` does). Samples are ``dict(img, gt_label)``."""

    METAINFO = dict(classes=tuple(str(d) for d in range(10)))

    def __init__(
        self,
        split: str = 'train',
        num: Optional[int] = None,
        size: int = 32,
        seed: int = 0,
        split_seed: int = 0,
        val_fraction: float = 0.3,
        settings: Optional[dict] = None,
        **kwargs,
    ):
        if split not in SPLITS:
            raise ValueError(f"DigitCropsClsDataset split must be 'train' or 'val', got {split!r}")
        self.split, self.size, self.seed, self.split_seed = split, size, seed, split_seed
        self.num = DEFAULT_NUM[split] if num is None else int(num)
        self.val_fraction, self.settings = val_fraction, crop_settings(**(settings or {}))
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        images, self.centres = generate_crops(
            self.split, self.num, self.size, self.seed, self.split_seed, self.val_fraction, **self.settings
        )
        self.images = np.ascontiguousarray(images[..., ::-1])  # RGB -> BGR, as LoadImageFromFile reads files
        return [dict(img_index=i, gt_label=c.digit) for i, c in enumerate(self.centres)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = self.images[info['img_index']]
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info
