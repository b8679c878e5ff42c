"""Run a distiller config's frozen teacher once over its training images and cache the logits its losses read,
so that training with ``model.teacher_cache=DIR`` neither builds nor runs the teacher.

    python tools/cache_teacher.py CONFIG [--out DIR] [--device cuda:0] [--cfg-options ...]
    torchrun --nproc_per_node=8 tools/cache_teacher.py CONFIG --out DIR          # one shard a process

It prints the disk it needs before it starts, shows progress with an ETA, and continues where an interrupted
run stopped. DIR defaults to the config's ``model.teacher_cache``, else work_dirs/teacher_cache/<config name>.
"""

import argparse

from mmengine.config import DictAction

from gdkd_seg.cache_builder import build_teacher_cache


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a SegDistiller config (its teacher, checkpoint and train data)')
    parser.add_argument('--out', help='the cache folder')
    parser.add_argument('--device', help='where the teacher runs (default: cuda:LOCAL_RANK when available)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    build_teacher_cache(args.config, args.out, args.cfg_options, args.device)


if __name__ == '__main__':
    main()
