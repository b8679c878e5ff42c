"""Parameters, FLOPs and CPU latency (PyTorch and onnxruntime) of a distiller's teacher and student.

    python tools/model_cost.py CONFIG [CHECKPOINT] [--size H W] [--latency-size H W] [--runs N] [--warmup N]
        [--threads N] [--out table.md] [--cfg-options KEY=VALUE ...]

FLOPs at the config's test size (or --size), latency per image (batch 1) as the median of --runs runs after
--warmup, at --latency-size (default: the FLOPs size). CHECKPOINT, when given, is loaded strictly into the
student; the teacher keeps random weights (none of these numbers depends on them). Prints a Markdown table and
writes it to --out. See docs/deploy.md.
"""

import argparse
import shlex
import sys

from mmengine.config import DictAction

from gdkd_seg.deploy import cost_table_markdown, model_cost
from gdkd_seg.utils import atomic_write


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a SegDistiller config (or a plain MMSeg segmentor config)')
    parser.add_argument('checkpoint', nargs='?', help="the student's weights (distiller or exported checkpoint)")
    parser.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'), help="FLOPs size (default: config's test)")
    parser.add_argument('--latency-size', type=int, nargs=2, metavar=('H', 'W'), help='latency size (default: --size)')
    parser.add_argument('--runs', type=int, default=5, help='timed runs per model and runtime (median)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs first')
    parser.add_argument(
        '--threads', type=int, help='torch and onnxruntime intra-op threads (default: torch.get_num_threads())'
    )
    parser.add_argument('--no-onnx', action='store_true', help='skip the onnxruntime latency')
    parser.add_argument('--out', help='also write the Markdown table here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    report = model_cost(
        args.config,
        args.checkpoint,
        size=tuple(args.size) if args.size else None,
        latency_size=tuple(args.latency_size) if args.latency_size else None,
        runs=args.runs,
        warmup=args.warmup,
        threads=args.threads,
        cfg_options=args.cfg_options,
        onnx=not args.no_onnx,
    )
    table = cost_table_markdown(
        report, command=shlex.join(['python', 'tools/model_cost.py', *(sys.argv[1:] if argv is None else argv)])
    )
    print(table)
    if args.out:
        atomic_write(table.encode(), args.out)
        print(f'written to {args.out}')


if __name__ == '__main__':
    main()
