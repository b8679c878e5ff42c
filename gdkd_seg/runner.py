"""Train and test from a config: what ``tools/train.py`` and ``tools/test.py`` (and ``tools/demo.py``) run.

    from gdkd_seg.runner import train, test
    train('configs/gdkd_deeplabv3_r101_r18_cityscapes.py', {'model.teacher_checkpoint': 'teacher.pth'})
    metrics = test('configs/gdkd_deeplabv3_r101_r18_cityscapes.py', 'work_dirs/.../iter_40000.pth')

``options`` are ``--cfg-options`` as a dict of dotted keys (``{'model.distill_losses.decode.loss.topk': 1}``).
Both check the config against its data before any model is built (:mod:`gdkd_seg.checks`) and run
MMEngine's Runner; a crash, Ctrl-C or SIGTERM during training leaves a checkpoint to resume from.
"""
import logging
import os
import os.path as osp
import signal
import threading
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmseg.registry import RUNNERS
from .checks import check_data_roots, check_model_fits_data


def load_config(path: str, options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """The config file with ``options`` merged in; ``work_dir`` defaults to ``work_dirs/<config name>``."""
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if options:
        cfg.merge_from_dict(dict(options))
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def prepare_cpu_distributed(cfg) -> None:
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


def build_runner(cfg: Config) -> Runner:
    """MMEngine's Runner (or the config's ``runner_type``), with the model checked against the data."""
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    check_model_fits_data(cfg, runner.model)
    return runner


def enable_amp(cfg: Config) -> None:
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current', level=logging.WARNING)
        return
    if cfg.optim_wrapper.type != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def train(config: str, options: Optional[dict] = None, work_dir: Optional[str] = None, resume: bool = False,
          amp: bool = False, launcher: str = 'none') -> Runner:
    """Train ``config`` (a segmentor, a distiller or a classifier); returns the trained Runner."""
    cfg = load_config(config, options, work_dir, launcher)
    if amp:
        enable_amp(cfg)
    cfg.resume = resume
    check_data_roots(cfg, ('train_dataloader', 'val_dataloader'))
    runner = build_runner(cfg)
    train_with_recovery(runner)
    return runner


def test(config: str, checkpoint: str, options: Optional[dict] = None, work_dir: Optional[str] = None,
         out: Optional[str] = None, show: bool = False, show_dir: Optional[str] = None, wait_time: float = 2,
         tta: bool = False, launcher: str = 'none') -> dict:
    """Evaluate ``checkpoint`` with ``config``'s test dataloader and evaluator; returns the metrics. A
    distiller checkpoint is tested through its student."""
    cfg = load_config(config, options, work_dir, launcher)
    cfg.load_from = checkpoint
    if show or show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise RuntimeError('show/show_dir need default_hooks.visualization=dict(type="SegVisualizationHook")')
        hook['draw'] = True
        if show:
            hook.update(show=True, wait_time=wait_time)
        if show_dir:
            cfg.visualizer['save_dir'] = show_dir
    if tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if out is not None:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {checkpoint}')
    check_data_roots(cfg, ('test_dataloader',))
    return build_runner(cfg).test()


def save_emergency_checkpoint(runner: Runner) -> None:
    """Save the current state as ``iter_N.pth`` and point ``last_checkpoint`` at it (for --resume)."""
    name = f'iter_{runner.iter}.pth'
    runner.save_checkpoint(runner.work_dir, name, save_optimizer=True, save_param_scheduler=True)
    if runner.rank == 0:
        with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(runner.work_dir, name))
    print_log(f'Training stopped at iteration {runner.iter}: saved {name}; continue with --resume',
              logger='current')


def train_with_recovery(runner: Runner):
    """``runner.train()``; an exception, Ctrl-C or SIGTERM after training started leaves a checkpoint."""
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt('SIGTERM')

    main_thread = threading.current_thread() is threading.main_thread() and os.name == 'posix'
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
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
