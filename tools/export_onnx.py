"""Export a distilled student to ONNX and check it in onnxruntime against PyTorch.

    python tools/export_onnx.py CONFIG CHECKPOINT --out student.onnx [--opset 18] [--images DIR_OR_FILES ...]
        [--size H W] [--cfg-options KEY=VALUE ...]

CONFIG is the SegDistiller config the checkpoint was trained with (or a plain MMSeg config, e.g. the
student.py that tools/export_student.py writes); CHECKPOINT a distiller checkpoint or an exported student,
loaded strictly. The ONNX model takes float pixels 0..255 (N x 3 x H x W, channels as mmcv.imread loads them:
BGR) and returns the decode head's logits; the data preprocessor's normalisation is inside the graph. It is
written only when onnx.checker passes and onnxruntime's argmax maps agree with PyTorch's on at least 99.9% of
the positions, on the given images, else the config's test/val images, else a synthetic image.
See docs/deploy.md.
"""

import argparse

from mmengine.config import DictAction

from gdkd_seg.deploy import DEFAULT_OPSET, export_onnx


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distiller config (or a plain MMSeg segmentor config)')
    parser.add_argument('checkpoint', help='distiller checkpoint, or a student exported by tools/export_student.py')
    parser.add_argument('--out', required=True, help='the ONNX file to write (its folder must exist)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument(
        '--images', nargs='+', help="image files or folders to check on (default: the config's test/val images)"
    )
    parser.add_argument('--max-images', type=int, default=4, help='at most this many images are checked')
    parser.add_argument(
        '--size', type=int, nargs=2, metavar=('H', 'W'), help='resize the check images (and a synthetic one) to H x W'
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    report = export_onnx(
        args.config,
        args.checkpoint,
        args.out,
        opset=args.opset,
        images=args.images,
        size=tuple(args.size) if args.size else None,
        cfg_options=args.cfg_options,
        max_images=args.max_images,
    )
    print(report.summary())


if __name__ == '__main__':
    main()
