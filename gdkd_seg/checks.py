"""Checks of a config against its data, run by :mod:`gdkd_seg.runner` before any model is built or any
iteration runs: the error names the problem and the fix."""
import os.path as osp
from typing import Iterator, Optional, Tuple

from mmengine.model import is_model_wrapper

from mmseg.registry import DATASETS

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


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
        folders = [prefix.get('img_path', ''), prefix.get('seg_map_path', '')] if isinstance(prefix, dict) \
            else [prefix]
        for folder in folders:
            path = osp.join(root, folder) if folder else root
            if path and not osp.isdir(path):
                raise DatasetNotFoundError(
                    f'{key}: the {dataset.get("type", "dataset")} folder {path!r} does not exist. '
                    f'Put the data there (see the README: "Datasets"), or point the config at it with '
                    f'--cfg-options {key}.dataset.data_root=/path/to/data')


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
                'dataset the config was written for.')
