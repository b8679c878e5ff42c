"""Evaluate a checkpoint (MMSegmentation's tools/test.py). Distiller checkpoints test their student.

python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--out DIR] [--show-dir DIR] [--cfg-options ...]
"""

import argparse
import os

from mmengine.config import DictAction

from gdkd_seg import runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor, a distiller or a classifier')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', help='directory to save the predicted segmentation maps')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images will be saved')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--tta', action='store_true', help='test time augmentation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    return runner.test(
        args.config,
        args.checkpoint,
        args.cfg_options,
        work_dir=args.work_dir,
        out=args.out,
        show=args.show,
        show_dir=args.show_dir,
        wait_time=args.wait_time,
        tta=args.tta,
        launcher=args.launcher,
    )


if __name__ == '__main__':
    main()
