"""How closely cached teacher logits follow the augmentation: the mean per-pixel KL(live || cached) of the
teacher's softmax and their top-1 agreement, over random augmentations of training images.

    python tools/teacher_cache_fidelity.py CONFIG [--num-images 64] [--draws 4] [--cfg-options ...]

CONFIG has ``model.teacher_cache`` (the cache built by tools/cache_teacher.py) and the live teacher's checkpoint.
"""

import argparse
import json

from mmengine.config import DictAction

from gdkd_seg.cache_builder import measure_fidelity


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a SegDistiller config with model.teacher_cache')
    parser.add_argument('--num-images', type=int, default=64)
    parser.add_argument('--draws', type=int, default=4, help='random augmentations per image')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    result = measure_fidelity(args.config, args.cfg_options, args.num_images, args.draws, args.seed)
    print(json.dumps(result, indent=1))
    return result


if __name__ == '__main__':
    main()
