"""scikit-learn's handwritten digits as a classification data set in mmpretrain's format: the small real
task the tests and the digits configs train on in seconds (no download)."""

from typing import List

import cv2
import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

from ..datasets.digit_scenes import load_digit_scans, split_scans


@DATASETS.register_module()
class DigitsClsDataset(BaseDataset):
    """The 1,797 real 8x8 handwritten-digit scans of ``sklearn.datasets.load_digits`` as a 10-class task:
    upsampled bilinearly to ``size`` x ``size``, white ink on black, grey in 3 channels (HxWx3 uint8, as
    ``LoadImageFromFile`` gives an image). ``split='train'`` / ``'val'`` are disjoint and stratified (the
    digit scenes' split). Samples are ``dict(img, gt_label)`` for mmpretrain's pipelines (``PackInputs``)."""

    METAINFO = dict(classes=tuple(str(d) for d in range(10)))

    def __init__(self, split: str = 'train', size: int = 32, val_fraction: float = 0.3, seed: int = 0, **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f"DigitsClsDataset split must be 'train' or 'val', got {split!r}")
        self.split, self.size, self.val_fraction, self.seed = split, size, val_fraction, seed
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        scans, targets = load_digit_scans()
        index = split_scans(targets, self.val_fraction, self.seed)[self.split]
        grey = [
            cv2.resize(scans[i].astype(np.float32), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            for i in index
        ]
        grey = np.clip(np.rint(np.stack(grey) * 255), 0, 255).astype(np.uint8)
        self.images = np.repeat(grey[..., None], 3, axis=3)
        return [dict(img_index=i, gt_label=int(targets[j])) for i, j in enumerate(index)]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = self.images[info['img_index']]
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info
