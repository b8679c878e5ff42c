"""Train a segmentor, a distiller or a classifier (MMSegmentation's tools/train.py, with gdkd_seg's checks).

    python tools/train.py configs/gdkd_deeplabv3_r101_r18_cityscapes.py [--work-dir D] [--resume] [--amp]
        [--resume-changed-config]
        [--cfg-options model.teacher_checkpoint=PATH ...] [--launcher pytorch]

A crash, Ctrl-C or kill (SIGTERM) during training saves a checkpoint; --resume continues from it. A run holds its
work dir (a second run into it is refused); --resume refuses a changed model config unless --resume-changed-config.
"""

import argparse
import os

from mmengine.config import DictAction

from gdkd_seg import runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor, a distiller or a classifier')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', action='store_true', help='resume from the latest checkpoint in the work_dir automatically'
    )
    parser.add_argument(
        '--resume-changed-config',
        action='store_true',
        help="with --resume: continue even though the model config differs from the checkpoint's (listed)",
    )
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, e.g. model.teacher_checkpoint=PATH',
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    runner.train(
        args.config,
        args.cfg_options,
        work_dir=args.work_dir,
        resume=args.resume or args.resume_changed_config,
        amp=args.amp,
        launcher=args.launcher,
        resume_changed_config=args.resume_changed_config,
    )


if __name__ == '__main__':
    main()
