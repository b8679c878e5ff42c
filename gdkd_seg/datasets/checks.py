"""Checks of a config against its data, run by :mod:`gdkd_seg.runner` before any model is built or any
iteration runs: the error names the problem and the fix.

* :func:`check_data_roots`: every image / annotation folder exists;
* :func:`check_datasets`: every segmentation data set finds samples, and a spread of its label maps are
  single-channel, of their images' sizes and hold only class ids and the ignore index (:func:`add_label_checks`
  then checks every sample as it loads);
* :func:`check_model_fits_data`: the model predicts as many classes as the data sets define.
"""

import os.path as osp
from typing import Iterator, Optional, Tuple

import numpy as np
from mmengine.model import is_model_wrapper
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS
from PIL import Image

from ..config import DATALOADERS
from .transforms import bad_label_values, channels_error, label_error, size_error

IGNORE_INDEX = 255  # MMSeg's decode heads ignore 255 unless a config says otherwise
EXIF_ORIENTATION = 0x0112
TURNING_ORIENTATIONS = (5, 6, 7, 8)  # the EXIF orientations that swap width and height


class DatasetNotFoundError(FileNotFoundError):
    """A dataloader points at a data root that is not there."""


def leaf_datasets(dataset: dict) -> list:
    """The leaf dataset configs under wrappers (ConcatDataset, RepeatDataset, ...)."""
    if 'datasets' in dataset:
        return [leaf for d in dataset['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'])
    return [dataset]


def dataloader_datasets(cfg, dataloaders=DATALOADERS) -> Iterator[Tuple[str, dict]]:
    """``(dataloader key, leaf dataset config)`` for every dataset the config's dataloaders read."""
    for key in dataloaders:
        loader = cfg.get(key)
        for dataset in leaf_datasets(loader['dataset']) if loader else []:
            yield key, dataset


def check_data_roots(cfg, dataloaders=DATALOADERS) -> None:
    """Fail before any model is built when a dataloader's image or annotation folder is missing."""
    for key, dataset in dataloader_datasets(cfg, dataloaders):
        root = dataset.get('data_root') or ''
        prefix = dataset.get('data_prefix') or {}
        folders = [prefix.get('img_path', ''), prefix.get('seg_map_path', '')] if isinstance(prefix, dict) else [prefix]
        for folder in folders:
            path = osp.join(root, folder) if folder else root
            if path and not osp.isdir(path):
                raise DatasetNotFoundError(
                    f'{key}: the {dataset.get("type", "dataset")} folder {path!r} does not exist. '
                    f'Put the data there (see the README: "Datasets"), or point the config at it with '
                    f'--cfg-options {key}.dataset.data_root=/path/to/data'
                )


def decode_head_classes(segmentor) -> Optional[int]:
    """``num_classes`` of a segmentor's decode head (None for a model without one)."""
    return getattr(getattr(segmentor, 'decode_head', None), 'num_classes', None)


def _dataset_classes(dataset: dict) -> Optional[tuple]:
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None and isinstance(dataset.get('type'), str):
        with DATASETS.switch_scope_and_registry(None) as registry:  # the config's default scope
            dataset_cls = registry.get(dataset['type'])
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    return None if classes is None else tuple(classes)


def check_model_fits_data(cfg, model, dataloaders=DATALOADERS) -> None:
    """A segmentor (a distiller's student) must predict as many classes as its datasets define."""
    model = model.module if is_model_wrapper(model) else model
    num_classes = decode_head_classes(getattr(model, 'student', model))
    if num_classes is None:
        return
    for key, dataset in dataloader_datasets(cfg, dataloaders):
        classes = _dataset_classes(dataset)
        if classes is not None and len(classes) != num_classes:
            raise ValueError(
                f'{key}: {dataset.get("type")} has {len(classes)} classes but the model predicts '
                f'{num_classes} (decode_head.num_classes). Set num_classes={len(classes)} in the model '
                '(for a distiller: the student, the teacher and their auxiliary heads), or use the '
                'dataset the config was written for.'
            )


def _dataset_class(dataset: dict):
    if not isinstance(dataset.get('type'), str):
        return None
    with DATASETS.switch_scope_and_registry(None) as registry:
        return registry.get(dataset['type'])


def seg_datasets(cfg, dataloaders=DATALOADERS) -> Iterator[Tuple[str, dict]]:
    """The ``(dataloader key, leaf dataset config)`` of MMSeg's segmentation data sets."""
    for key, dataset in dataloader_datasets(cfg, dataloaders):
        dataset_cls = _dataset_class(dataset)
        if isinstance(dataset_cls, type) and issubclass(dataset_cls, BaseSegDataset):
            yield key, dataset


def check_datasets(cfg, dataloaders=DATALOADERS, num_label_maps: int = 8) -> None:
    """Every segmentation data set finds samples, and ``num_label_maps`` label maps spread over it (read as
    ``LoadAnnotations`` reads them) have one channel and their images' sizes, and hold only class ids and the
    ignore index. Cheap: the file lists, a few PNGs and their images' headers, before any model is built."""
    for key, dataset in seg_datasets(cfg, dataloaders):
        with DATASETS.switch_scope_and_registry(None) as registry:
            built = registry.build(dict(dataset, pipeline=[], lazy_init=False, serialize_data=False))
        if len(built) == 0:
            prefix = dataset.get('data_prefix') or {}
            root = dataset.get('data_root') or ''
            raise DatasetNotFoundError(
                f'{key}: the {dataset.get("type")} found no samples: no images *{built.img_suffix} under '
                f'{osp.join(root, prefix.get("img_path", ""))!r} with a label map *{built.seg_map_suffix} under '
                f'{osp.join(root, prefix.get("seg_map_path", ""))!r}'
                + (f' listed in {built.ann_file!r}' if built.ann_file else '')
                + '. Put the data there (README: "Datasets"), or fix data_root / data_prefix / the suffixes.'
            )
        classes = _dataset_classes(dataset)
        if classes is None:
            continue
        loader = LoadAnnotations()
        for index in sorted(set(np.linspace(0, len(built) - 1, min(num_label_maps, len(built))).astype(int))):
            info = built.get_data_info(int(index))
            if info.get('seg_map_path') is not None:
                check_label_map(key, info, loader(dict(info, seg_fields=[]))['gt_seg_map'], len(classes))


def check_label_map(key: str, info: dict, labels: np.ndarray, num_classes: int) -> None:
    """One sample's label map (as ``LoadAnnotations`` loaded it) against its image and the class count."""
    error = label_map_error(info, labels, num_classes)
    if error:
        raise ValueError(f'{key}: {error}')


def label_map_error(info: dict, labels: np.ndarray, num_classes: int) -> Optional[str]:
    path = info['seg_map_path']
    if labels.ndim > 2:
        return channels_error(path, labels)
    sizes = image_sizes(info.get('img_path'))
    if sizes and labels.shape not in sizes:
        return size_error(info['img_path'], path, sizes[-1], labels.shape)
    bad = bad_label_values(labels, num_classes, IGNORE_INDEX)
    return label_error(path, bad, num_classes, IGNORE_INDEX) if bad else None


def image_sizes(path) -> tuple:
    """The ``(height, width)`` an image may load with, read from its header without decoding it: as stored, then
    turned by its EXIF orientation when it has one that turns it (``LoadImageFromFile`` applies it unless its
    ``color_type`` is 'unchanged'). Empty when PIL cannot read the file (``LoadImageFromFile`` then reports it)."""
    if not path:
        return ()
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if 'exif' in image.info else 1
    except (OSError, TypeError, ValueError, SyntaxError):
        return ()
    return ((height, width), (width, height)) if orientation in TURNING_ORIENTATIONS else ((height, width),)


def add_label_checks(cfg, dataloaders=DATALOADERS) -> None:
    """Put a ``CheckSegLabels`` after every ``LoadAnnotations`` of the segmentation data sets' pipelines."""
    for _, dataset in seg_datasets(cfg, dataloaders):
        classes = _dataset_classes(dataset)
        pipeline = dataset.get('pipeline') or []
        if classes is None or any(t.get('type') == 'CheckSegLabels' for t in pipeline):
            continue
        checked = []
        for transform in pipeline:
            checked.append(transform)
            if transform.get('type') == 'LoadAnnotations':
                checked.append(dict(type='CheckSegLabels', num_classes=len(classes), ignore_index=IGNORE_INDEX))
        dataset['pipeline'] = checked
