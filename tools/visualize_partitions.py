"""Draw GDKD's per-pixel top-k partitions of a teacher (and the GDKD loss against a student) on images.

    python tools/visualize_partitions.py CONFIG CHECKPOINT --img PATH_OR_DIR --out DIR
        [--ann PATH_OR_DIR] [--topk K] [--device cpu] [--panel-width 480] [--cfg-options ...]

CONFIG is a distiller config (teacher from ``model.teacher`` + ``model.teacher_checkpoint``, student from
CHECKPOINT; a plain student checkpoint from tools/export_student.py works too) or a plain MMSeg config with
its CHECKPOINT (that model is the teacher; the student-side panels are left out). Images go through the
config's test pipeline and data preprocessor; the maps are computed on the logits MMSeg's ``predict``
returns (the decode head's output resized to the image). With ``--ann`` (an annotation file, or a folder
laid out like the image folder, named with the dataset's ``seg_map_suffix``) the ground-truth panels are
drawn too. One PNG per image is written to DIR.
"""

import argparse

from mmengine.config import DictAction

from gdkd_seg.visualization import visualize_partitions


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='distiller config, or a plain MMSeg config (teacher-side panels only)')
    parser.add_argument(
        'checkpoint', help="distiller (or exported student) checkpoint; with a plain config, that model's checkpoint"
    )
    parser.add_argument('--img', required=True, help='an image, or a folder searched recursively')
    parser.add_argument('--out', required=True, help='folder for the PNGs')
    parser.add_argument('--ann', help='annotation file (with one --img) or folder mirroring the image folder')
    parser.add_argument('--topk', type=int, help="k of the teacher's top group (default: the config's GDKD k, else 3)")
    parser.add_argument('--device', help='e.g. cpu or cuda:0 (default: cuda:0 when available)')
    parser.add_argument('--panel-width', type=int, default=480, help='width of one panel in pixels')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return visualize_partitions(
        args.config,
        args.checkpoint,
        args.img,
        args.out,
        ann=args.ann,
        topk=args.topk,
        device=args.device,
        panel_width=args.panel_width,
        options=args.cfg_options,
    )


if __name__ == '__main__':
    main()
