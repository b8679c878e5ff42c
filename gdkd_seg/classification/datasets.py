"""Classification datasets: ImageNet-style class folders, CIFAR-100 (torchvision's files) and scikit-learn's
handwritten digits. Each sample is ``dict(img or img_path, gt_label)`` for the pipelines of
``transforms.py``; images are HxWx3 uint8 in BGR order, as ``LoadImageFromFile`` reads them.
"""
import os
import os.path as osp
from typing import List

import cv2
import numpy as np
from mmengine.dataset import BaseDataset

from mmseg.registry import DATASETS
from ..apis import DatasetNotFoundError
from ..datasets.digit_scenes import load_digit_scans, split_scans

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
CIFAR100_URL = 'https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz'


@DATASETS.register_module()
class ImageFolderDataset(BaseDataset):
    """Images in one subfolder per class: ``data_root/<data_prefix.img_path>/<class>/**/<image>``.

    This is ImageNet's usual layout (``train/n01440764/*.JPEG``, and ``val/`` once its images are moved
    into class folders). Labels follow the sorted folder names, so train and val must hold the same class
    folders. With ``ann_file``, each line is instead ``<path relative to img_path> <label>``.
    """

    def __init__(self, data_root: str = '', data_prefix: dict = dict(img_path=''), ann_file: str = '',
                 extensions=IMG_EXTENSIONS, **kwargs):
        self.extensions = tuple(e.lower() for e in extensions)
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        folder = self.data_prefix['img_path']
        if not osp.isdir(folder):
            raise DatasetNotFoundError(f'{type(self).__name__}: image folder {folder!r} does not exist; set '
                                       f'data_root / data_prefix.img_path to your copy of the data')
        if self.ann_file:
            return self._from_ann_file(folder)
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        if not classes:
            raise DatasetNotFoundError(
                f'{folder!r} has no class subfolders. Sort the images into one folder per class (for '
                f'ImageNet val, e.g. with the usual valprep.sh), or give ann_file with "<path> <label>" lines')
        data_list = []
        for label, name in enumerate(classes):
            for root, dirs, files in os.walk(osp.join(folder, name)):
                dirs.sort()
                data_list += [dict(img_path=osp.join(root, f), gt_label=label)
                              for f in sorted(files) if f.lower().endswith(self.extensions)]
        if not data_list:
            raise DatasetNotFoundError(f'No images ({", ".join(self.extensions)}) under {folder!r}')
        self._metainfo.setdefault('classes', tuple(classes))
        return data_list

    def _from_ann_file(self, folder: str) -> List[dict]:
        data_list = []
        with open(self.ann_file) as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    path, label = line.rsplit(maxsplit=1)
                    data_list.append(dict(img_path=osp.join(folder, path), gt_label=int(label)))
                except ValueError as err:
                    raise ValueError(f'{self.ann_file}:{line_no}: expected "<path> <label>", got '
                                     f'{line.strip()!r}') from err
        return data_list


class InMemoryClsDataset(BaseDataset):
    """Images held in one ``(N, H, W, 3)`` uint8 BGR array; ``load_data_list`` fills ``self.images`` and
    returns ``dict(img_index=i, gt_label=y)`` items."""

    images: np.ndarray

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = self.images[info['img_index']]
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info


@DATASETS.register_module()
class CIFAR100Dataset(InMemoryClsDataset):
    """CIFAR-100 read by ``torchvision.datasets.CIFAR100(data_root, download=False)``: 32x32 images,
    100 classes; ``split='train'`` (50,000) or ``'test'`` (10,000, the usual evaluation set)."""

    def __init__(self, data_root: str, split: str = 'train', **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"CIFAR100Dataset split must be 'train' or 'test', got {split!r}")
        self.split = split
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> List[dict]:
        from torchvision.datasets import CIFAR100
        try:
            data = CIFAR100(self.data_root, train=self.split == 'train', download=False)
        except RuntimeError as err:  # torchvision: 'Dataset not found or corrupted'
            root = self.data_root
            raise DatasetNotFoundError(
                f'CIFAR-100 was not found under data_root={root!r} (expected {osp.join(root, "cifar-100-python")}'
                f'/{{train,test,meta}}). Download {CIFAR100_URL} and extract it into {root!r}, e.g. '
                f'python -c "import torchvision; torchvision.datasets.CIFAR100({root!r}, download=True)" on a '
                f'machine with internet access, or point the config at your copy with --cfg-options '
                f'train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR') from err
        self.images = np.ascontiguousarray(data.data[..., ::-1])  # RGB -> BGR, as mmcv loads images
        self._metainfo.setdefault('classes', tuple(data.classes))
        return [dict(img_index=i, gt_label=int(t)) for i, t in enumerate(data.targets)]


@DATASETS.register_module()
class DigitsClsDataset(InMemoryClsDataset):
    """The 1,797 real 8x8 handwritten-digit scans of ``sklearn.datasets.load_digits`` (bundled, no
    download) as a 10-class task: upsampled bilinearly to ``size`` x ``size``, white ink on black, grey in
    3 channels. ``split='train'`` / ``'val'`` are disjoint and stratified (the digit scenes' split)."""

    METAINFO = dict(classes=tuple(str(d) for d in range(10)))

    def __init__(self, split: str = 'train', size: int = 32, val_fraction: float = 0.3, seed: int = 0,
                 **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(f"DigitsClsDataset split must be 'train' or 'val', got {split!r}")
        self.split, self.size, self.val_fraction, self.seed = split, size, val_fraction, seed
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        scans, targets = load_digit_scans()
        index = split_scans(targets, self.val_fraction, self.seed)[self.split]
        grey = [cv2.resize(scans[i].astype(np.float32), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
                for i in index]
        grey = np.clip(np.rint(np.stack(grey) * 255), 0, 255).astype(np.uint8)
        self.images = np.repeat(grey[..., None], 3, axis=3)
        return [dict(img_index=i, gt_label=int(targets[j])) for i, j in enumerate(index)]
