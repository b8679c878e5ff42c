"""Data-pipeline transforms of gdkd-seg."""

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


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


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Refuse a label map with values that name no class, naming its file (after ``LoadAnnotations``, whose
    ``reduce_zero_label`` / ``label_map`` it sees applied). ``gdkd_seg.runner`` puts one after every
    ``LoadAnnotations`` of a segmentation config, so that training and testing stop at the sample instead of
    failing inside the loss or scoring it silently."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def transform(self, results: dict) -> dict:
        bad = bad_label_values(results['gt_seg_map'], self.num_classes, self.ignore_index)
        if bad:
            raise ValueError(label_error(results.get('seg_map_path'), bad, self.num_classes, self.ignore_index))
        return results

    def __repr__(self):
        return f'{type(self).__name__}(num_classes={self.num_classes}, ignore_index={self.ignore_index})'
