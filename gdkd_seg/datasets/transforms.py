"""Data-pipeline transforms of gdkd-seg."""

from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image


def bad_label_values(labels: np.ndarray, num_classes: int, ignore_index: int) -> list:
    """The values of a label map that name no class and are not the ignore index."""
    values = np.unique(labels)
    return [int(v) for v in values if not (0 <= v < num_classes or v == ignore_index)]


def label_error(path, values, num_classes: int, ignore_index: int) -> str:
    return (
        f'{path}: label values {values[:10]} are outside [0, {num_classes}) and not the ignore index '
        f'{ignore_index}. Are the annotations in train ids (for Cityscapes the *_labelTrainIds.png maps of '
        'tools/convert_cityscapes.py), is reduce_zero_label right for the data set, and does the config '
        f"have the data set's class count ({num_classes} here)?"
    )


def channels_error(path, labels: np.ndarray) -> Optional[str]:
    """Why a label map as ``LoadAnnotations`` loads it has more than one channel (None when it has one): label
    maps hold one class id per pixel, in a single-channel (greyscale or palette) PNG."""
    if labels.ndim < 3:
        return None
    channels = labels.shape[-1]
    colour = labels[..., : 3 if channels >= 3 else 1]
    if all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[-1])):
        return (
            f'{path}: the label map has {channels} channels that all hold the same values: an RGB copy of a label '
            'map of class ids (train ids). Label maps must be single-channel PNGs; save each as one, e.g. '
            f'PIL.Image.open(path).convert("L").save(path), or write them again with the converter (for Cityscapes '
            'tools/convert_cityscapes.py).'
        )
    return (
        f'{path}: the label map is an RGB (colour-coded) image of {channels} channels that differ: a colour '
        'visualisation of the classes, not class ids. Label maps must be single-channel PNGs of class ids (train '
        "ids): convert each colour to its class id with the data set's palette (for Cityscapes use the "
        '*_labelTrainIds.png maps of tools/convert_cityscapes.py).' + _palette_hint(path)
    )


def _palette_hint(path) -> str:
    """For a palette PNG read in colour (LoadAnnotations with imdecode_backend='cv2'): how to read its ids."""
    try:
        with Image.open(path) as image:
            mode = image.mode
    except (OSError, TypeError, ValueError):
        return ''
    if mode != 'P':
        return ''
    return (
        ' The file is a palette PNG whose pixels are class ids: it reads as colours only with '
        "LoadAnnotations(imdecode_backend='cv2'); use MMSeg's default imdecode_backend='pillow'."
    )


def size_error(img_path, seg_map_path, image_hw: Tuple[int, int], label_hw: Tuple[int, int]) -> Optional[str]:
    """Why a label map does not fit its image (None when it has the image's height and width)."""
    image_hw, label_hw = tuple(image_hw[:2]), tuple(label_hw[:2])
    if image_hw == label_hw:
        return None
    rotated = (
        ' The image may carry an EXIF orientation that rotates it as it loads: save it without one.'
        if image_hw == label_hw[::-1]
        else ''
    )
    return (
        f'{seg_map_path}: the label map is {label_hw[1]}x{label_hw[0]} (width x height), but its image {img_path} is '
        f'{image_hw[1]}x{image_hw[0]}: a label map must have the size of its image. Is it the label map of this image '
        '(the data set pairs them by name: check data_prefix, img_suffix and seg_map_suffix), or was one of the two '
        "resized? Write the label map again at the image's size (resize label maps with nearest-neighbour "
        'interpolation only).' + rotated
    )


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Refuse a label map of more than one channel, of another size than its image, or with values that name no
    class, naming its file (after ``LoadAnnotations``, whose ``reduce_zero_label`` / ``label_map`` it sees
    applied). The size is compared with the image's as loaded (``ori_shape``: test pipelines resize the image
    before ``LoadAnnotations``). ``gdkd_seg.runner`` puts one after every ``LoadAnnotations`` of a segmentation
    config, so that training and testing stop at the sample instead of failing inside the loss, or in the
    collate, or scoring it silently."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def transform(self, results: dict) -> dict:
        labels, path = results['gt_seg_map'], results.get('seg_map_path')
        error = channels_error(path, labels) or self.image_size_error(results)
        if error:
            raise ValueError(error)
        bad = bad_label_values(labels, self.num_classes, self.ignore_index)
        if bad:
            raise ValueError(label_error(path, bad, self.num_classes, self.ignore_index))
        return results

    @staticmethod
    def image_size_error(results: dict) -> Optional[str]:
        """The label map against the image as ``LoadImageFromFile`` loaded it (``ori_shape``: test pipelines
        resize the image before ``LoadAnnotations``)."""
        if results.get('ori_shape') is None:
            return None
        return size_error(
            results.get('img_path'), results.get('seg_map_path'), results['ori_shape'], results['gt_seg_map'].shape
        )

    def __repr__(self):
        return f'{type(self).__name__}(num_classes={self.num_classes}, ignore_index={self.ignore_index})'
