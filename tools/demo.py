"""The embedded demo: the whole distillation pipeline on digit scenes, on a laptop CPU, as time-to-accuracy curves.

    python tools/demo.py [--full | --quick] [--work-dir work_dirs/demo] [--data-root data/digit_scenes]
        [--seeds 0 1 2] [--student-iters N] [--val-every N] [--teacher-iters N] [--teacher-val-every N]
        [--methods KD DKD GDKD GDKD+DIST GDKD-live] [--jobs 2]
        [--cfg-options KEY=VALUE ...]
        [--verbose]

1. writes the digit scenes (real handwritten digits from scikit-learn, see gdkd_seg/datasets/digit_scenes.py)
   unless they are already there; 2. trains the DeepLabV3 teacher (the config's schedule), or reuses the one trained
   with the same config and data; 3. caches its logits of the train scenes once; 4. trains the student alone
   and each distillation method of configs/demo/ (from the cache; GDKD also with the live teacher, one seed)
   with the same iterations, seeds and learning rate, validating every few iterations with MMSeg's IoUMetric
   and timing the training; 5. draws partition pictures and measures the models' cost; 6. writes
   ``results.md`` (with the plateau check, the table at equal iterations and equal wall-clock, the share of
   the teacher-student gap closed) and ``curves.png`` to the work dir.

The default is the shorter schedule (``make demo``); ``--full`` trains for the configs' schedules (the
benchmark of docs/demo.md); ``--quick`` shortens everything (a smoke test, its
numbers mean little). The console shows a line per stage and MMEngine's progress lines (with ETA); full logs
are in each run's work dir. ``--cfg-options`` overrides the config of every distilled method (a sweep: one
setting per call, same work dir; runs with overrides go to ``<method>-<hash of the overrides>/seed<N>``).
"""

import argparse
import warnings

from mmengine.config import DictAction

from gdkd_seg.demo import DEMO, FULL, QUICK, Demo, demo_methods


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be a positive number of iterations, got {text}')
    return value


def parse_args(argv=None, methods=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        '--full',
        action='store_true',
        help="the configs' schedules (teacher 18,000, students 48,000 iterations): the benchmark of docs/demo.md",
    )
    length.add_argument(
        '--quick',
        action='store_true',
        help='a few iterations on fewer scenes, two seeds (a smoke test, about 2 minutes)',
    )
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where runs and results.md go')
    parser.add_argument('--data-root', default='data/digit_scenes', help='where the digit scenes are written')
    parser.add_argument('--seeds', type=int, nargs='+', help='seeds of the student runs (default 0 1 2)')
    parser.add_argument(
        '--student-iters',
        type=positive_int,
        help="the students' schedule in iterations (the poly decay ends there; runs go to <work dir>/<N>it), "
        'e.g. --full --methods student --student-iters 24000 for a longer plateau check',
    )
    parser.add_argument(
        '--val-every',
        type=positive_int,
        help='iterations between the validations of the student runs (default: '
        f'{FULL.val_every} with --full, {DEMO.val_every} without, {QUICK.val_every} with --quick); '
        'e.g. 500 with --student-iters 12000 for 24 points per curve',
    )
    parser.add_argument(
        '--teacher-iters',
        type=positive_int,
        help="the teacher's schedule in iterations (a plateau check of the teacher), e.g. --full --methods student "
        '--teacher-iters 64000 --teacher-val-every 2000 --work-dir work_dirs/teacher64k; give it its own '
        "--work-dir: the distilled students' folders do not name their teacher, so a run from another teacher "
        'would be trained again over them',
    )
    parser.add_argument(
        '--teacher-val-every',
        type=positive_int,
        help=f'iterations between the validations of the teacher (default: {FULL.teacher_val_every} with --full, '
        f'{DEMO.teacher_val_every} without, {QUICK.teacher_val_every} with --quick)',
    )
    parser.add_argument(
        '--methods',
        nargs='+',
        choices=[m.key for m in methods],
        help='the methods to run (the student alone always runs); default: '
        + ' '.join(m.key for m in methods[1:] if m.default),
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        metavar='KEY=VALUE',
        help="overrides of every distilled method's config, in tools/train.py's syntax, e.g. "
        'model.distill_losses.decode.loss.topk=5 (the student alone keeps its config)',
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='student runs trained at once, one CPU thread each (default 2: a 2-core laptop; 1: one at a time '
        'with every thread)',
    )
    parser.add_argument('--data-only', action='store_true', help='write the digit scenes and stop')
    parser.add_argument('--verbose', action='store_true', help='show the full MMEngine logs')
    return parser.parse_args(argv)


def main(argv=None):
    methods = demo_methods()
    args = parse_args(argv, methods)
    if not args.verbose:
        warnings.filterwarnings('ignore', message='``build_loss`` would be deprecated')
    schedule = QUICK if args.quick else FULL if args.full else DEMO
    if args.quick and args.data_root == 'data/digit_scenes':
        args.data_root = 'data/digit_scenes_quick'  # smaller settings: keep the full set's cache intact
    if args.seeds:
        schedule = schedule._replace(seeds=tuple(args.seeds))
    if args.student_iters:
        schedule = schedule._replace(student_iters=args.student_iters)
    if args.val_every:
        schedule = schedule._replace(val_every=args.val_every)
    if args.teacher_iters:
        schedule = schedule._replace(teacher_iters=args.teacher_iters)
    if args.teacher_val_every:
        schedule = schedule._replace(teacher_val_every=args.teacher_val_every)
    chosen = [m for m in methods if m is methods[0] or (m.key in args.methods if args.methods else m.default)]
    demo = Demo(
        args.work_dir, args.data_root, schedule, chosen, args.verbose, args.cfg_options, methods, jobs=args.jobs
    )
    if args.data_only:
        demo.prepare_data()
        return None
    return demo.run()


if __name__ == '__main__':
    main()
