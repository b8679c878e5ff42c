"""What tools/train.py and tools/test.py share: config loading, input checks, crash-safe training."""
import os
import os.path as osp
import signal
from typing import Optional

import torch
import torch.distributed as dist

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmseg.registry import DATASETS, RUNNERS

from .models.seg_distiller import decode_head_classes


class DatasetNotFoundError(FileNotFoundError):
    """A dataloader points at a data root that is not there."""


def load_config(path, cfg_options=None, work_dir=None, launcher='none'):
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def _datasets(dataset):
    """The leaf dataset configs under wrappers (ConcatDataset, RepeatDataset, ...)."""
    if 'datasets' in dataset:
        return [leaf for d in dataset['datasets'] for leaf in _datasets(d)]
    if 'dataset' in dataset:
        return _datasets(dataset['dataset'])
    return [dataset]


DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _dataloader_datasets(cfg, dataloaders=DATALOADERS):
    """``(dataloader key, leaf dataset config)`` for every dataset the config's dataloaders read."""
    for key in dataloaders:
        loader = cfg.get(key)
        for dataset in _datasets(loader['dataset']) if loader else []:
            yield key, dataset


def check_data_roots(cfg, dataloaders=DATALOADERS):
    """Fail before any model is built when a dataloader's image or annotation folder is missing."""
    for key, dataset in _dataloader_datasets(cfg, dataloaders):
        root = dataset.get('data_root') or ''
        prefix = dataset.get('data_prefix') or {}
        for folder in [prefix.get('img_path', ''), prefix.get('seg_map_path', '')]:
            path = osp.join(root, folder) if folder else root
            if path and not osp.isdir(path):
                raise DatasetNotFoundError(
                    f'{key}: the {dataset.get("type", "dataset")} folder {path!r} does not exist. '
                    f'Put the data there (see the README: "Datasets"), or point the config at it with '
                    f'--cfg-options {key}.dataset.data_root=/path/to/data')


def prepare_cpu_distributed(cfg):
    """Make ``--launcher pytorch`` work on machines without CUDA (MMEngine 0.10.7 assumes GPUs).

    MMEngine's launcher calls ``torch.cuda.set_device`` unconditionally and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. We start the process group ourselves (the Runner then
    skips its own) with gloo, as NCCL needs GPUs, and wrap the model in DDP with ``device_ids=None``.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        print_log(f'No CUDA device: using the gloo backend instead of {backend}', logger='current')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper


def _dataset_classes(dataset) -> Optional[tuple]:
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None and isinstance(dataset.get('type'), str):
        dataset_cls = DATASETS.get(dataset['type'])
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    return None if classes is None else tuple(classes)


def check_model_fits_data(cfg, model, dataloaders=DATALOADERS):
    """A segmentor (a distiller's student) must predict as many classes as its datasets define."""
    model = model.module if is_model_wrapper(model) else model
    num_classes = decode_head_classes(getattr(model, 'student', model))
    if num_classes is None:
        return
    for key, dataset in _dataloader_datasets(cfg, dataloaders):
        classes = _dataset_classes(dataset)
        if classes is not None and len(classes) != num_classes:
            raise ValueError(
                f'{key}: {dataset.get("type")} has {len(classes)} classes but the model predicts '
                f'{num_classes} (decode_head.num_classes). Set num_classes={len(classes)} in the model '
                '(for a distiller: the student, the teacher and their auxiliary heads), or use the '
                'dataset the config was written for.')


def build_runner(cfg):
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    check_model_fits_data(cfg, runner.model)
    return runner


def save_emergency_checkpoint(runner):
    """Save the current state as ``iter_N.pth`` and point ``last_checkpoint`` at it (for --resume)."""
    name = f'iter_{runner.iter}.pth'
    runner.save_checkpoint(runner.work_dir, name, save_optimizer=True, save_param_scheduler=True)
    if runner.rank == 0:
        with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(runner.work_dir, name))
    print_log(f'Training stopped at iteration {runner.iter}: saved {name}; continue with --resume',
              logger='current')


def train_with_recovery(runner):
    """``runner.train()``; an exception, Ctrl-C or SIGTERM after training started leaves a checkpoint."""
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt('SIGTERM')

    previous = signal.signal(signal.SIGTERM, on_sigterm) if _main_thread() else None
    try:
        return runner.train()
    except BaseException:
        if getattr(runner, '_train_loop', None) is not None and not isinstance(runner._train_loop, dict) \
                and runner.iter > 0:
            save_emergency_checkpoint(runner)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread() and os.name == 'posix'
