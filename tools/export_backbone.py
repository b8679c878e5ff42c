"""Turn a classification checkpoint (ClsDistiller or ImageClassifier) into a backbone checkpoint that starts
a segmentor, the way ``open-mmlab://resnet18_v1c`` does.

    python tools/export_backbone.py CHECKPOINT OUT.pth [--check-config SEG_CONFIG]

OUT.pth holds the backbone's weights under the backbone's own keys (``stem.0.weight``, ``layer1.0...``).
A segmentation student then starts from it with, in its config,

    model = dict(student=dict(cfg_path=..., pretrained='OUT.pth'))          # a distiller's student
    model = dict(pretrained='OUT.pth')                                      # a plain MMSeg segmentor

or ``backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='OUT.pth'))``. ``--check-config`` loads
OUT.pth strictly into that config's segmentation backbone (``model.student`` for distillers) and fails
naming every missing, unexpected or mis-shaped key.
"""

import argparse

from gdkd_seg.export import BACKBONE_PREFIXES, check_backbone_fits, export_backbone


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='ClsDistiller or ImageClassifier checkpoint (e.g. epoch_100.pth)')
    parser.add_argument('out', help='output backbone checkpoint (.pth)')
    parser.add_argument(
        '--prefix', help=f'key prefix of the backbone (default: the first of {BACKBONE_PREFIXES} present)'
    )
    parser.add_argument(
        '--check-config',
        help='a segmentation (or SegDistiller) config whose backbone must load '
        'the export with no missing or unexpected keys',
    )
    args = parser.parse_args(argv)
    out = export_backbone(args.checkpoint, args.out, args.prefix)
    print(f'backbone checkpoint: {out}')
    if args.check_config:
        check_backbone_fits(args.check_config, out)
        print(f'loads into the backbone of {args.check_config} with no missing or unexpected keys')


if __name__ == '__main__':
    main()
