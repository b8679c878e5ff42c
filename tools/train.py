"""Train a segmentor or a distiller (MMSegmentation's tools/train.py, plus gdkd_seg's checks).

    python tools/train.py configs/gdkd_deeplabv3_r101_r18_cityscapes.py [--work-dir D] [--resume] [--amp]
        [--cfg-options model.teacher_checkpoint=PATH ...] [--launcher pytorch]

A crash, Ctrl-C or kill (SIGTERM) during training saves a checkpoint; --resume continues from it.
"""
import argparse
import logging
import os

from mmengine.config import DictAction
from mmengine.logging import print_log

import gdkd_seg  # noqa: F401  (registers the project's modules, installs the safe checkpoint loader)
from gdkd_seg.apis import build_runner, check_data_roots, load_config, train_with_recovery


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor or a distiller')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. model.teacher_checkpoint=PATH')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg):
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current', level=logging.WARNING)
        return
    if cfg.optim_wrapper.type != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        enable_amp(cfg)
    cfg.resume = args.resume
    check_data_roots(cfg, ('train_dataloader', 'val_dataloader'))
    train_with_recovery(build_runner(cfg))


if __name__ == '__main__':
    main()
