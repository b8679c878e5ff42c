"""The embedded demo: the whole distillation pipeline on digit scenes, on a laptop CPU.

    python tools/demo.py [--quick] [--work-dir work_dirs/demo] [--data-root data/digit_scenes]
        [--seeds 0 1 2] [--methods KD DKD GDKD] [--cfg-options KEY=VALUE ...] [--verbose]

1. writes the digit scenes (real handwritten digits from scikit-learn, see gdkd_seg/datasets/digit_scenes.py)
   unless they are already there; 2. trains the DeepLabV3 teacher, or reuses the one trained with the same
   config and data; 3. trains the student alone and with each distillation method, with the same
   iterations, seeds and learning rate; 4. evaluates every run with MMSeg's IoUMetric; 5. writes
   ``results.md`` (and ``results.json``) to the work dir.

Every run goes through the configs in configs/demo/, SegDistiller and tools/train.py, as Cityscapes does;
``--quick`` shortens the schedules (a smoke test of the pipeline, its numbers mean little). The console
shows a line per stage and MMEngine's progress lines (with ETA); full logs are in each run's work dir.
``--cfg-options`` overrides the config of every distilled method (a sweep: one setting per call, same work
dir; runs with overrides go to ``<method>-<hash of the overrides>/seed<N>``).
"""
import argparse
import hashlib
import importlib.util
import io
import json
import os
import os.path as osp
import platform
import re
import statistics
import sys
import time
import warnings
from contextlib import redirect_stdout
from typing import Dict, List, NamedTuple, Optional

import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

from gdkd_seg.datasets import prepare_digit_scenes  # noqa: E402
from gdkd_seg.datasets.digit_scenes import read_meta  # noqa: E402

CONFIG_DIR = osp.join(REPO, 'configs', 'demo')
TEACHER_CONFIG = osp.join(CONFIG_DIR, 'teacher_deeplabv3_r18w32_digits.py')


class Method(NamedTuple):
    """One row of the results table: a config trained for every seed (``distilled`` ones get the teacher)."""
    key: str
    label: str
    config: str
    distilled: bool = True
    default: bool = True  # run unless --methods names a subset; the others only when named


# One entry per method; the first is the baseline that the gains are measured against. The peer methods
# after GDKD stay out of the default run (its 20-minute budget); name them with --methods.
METHODS: List[Method] = [
    Method('student', 'student alone', osp.join(CONFIG_DIR, 'student_fcn_r18w16_digits.py'), distilled=False),
    Method('KD', 'KD (T=1)', osp.join(CONFIG_DIR, 'kd_deeplabv3_fcn_digits.py')),
    Method('DKD', 'DKD (a=1, b=2, T=1)', osp.join(CONFIG_DIR, 'dkd_deeplabv3_fcn_digits.py')),
    Method('GDKD', 'GDKD (k=3, w=1/1/2, T=1)', osp.join(CONFIG_DIR, 'gdkd_deeplabv3_fcn_digits.py')),
    Method('TopKD', 'TopKD (k=5)', osp.join(CONFIG_DIR, 'topkd_deeplabv3_fcn_digits.py'), default=False),
    Method('GDKD+TSM', 'GDKD + TopKD scaling', osp.join(CONFIG_DIR, 'gdkd_tsm_deeplabv3_fcn_digits.py'),
           default=False),
    Method('BlockKD', 'block-wise KD (stones 1-3)', osp.join(CONFIG_DIR, 'blockwise_deeplabv3_fcn_digits.py'),
           default=False),
    Method('FKD', 'feature-only KD', osp.join(CONFIG_DIR, 'fkd_deeplabv3_fcn_digits.py'), default=False),
]
DEFAULT_METHODS = [m for m in METHODS if m.default]


class Schedule(NamedTuple):
    teacher_iters: Optional[int]  # None: the config's
    student_iters: Optional[int]
    seeds: tuple
    data: dict  # digit-scene settings (gdkd_seg.datasets.digit_scenes.DEFAULT_SETTINGS)


FULL = Schedule(teacher_iters=None, student_iters=None, seeds=(0, 1, 2), data={})
QUICK = Schedule(teacher_iters=120, student_iters=60, seeds=(0, 1), data=dict(num_train=400, num_val=100))


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f'gdkd_tools_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stage(msg):
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def fmt_duration(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 60}m{seconds % 60:02d}s' if seconds >= 60 else f'{seconds}s'


class ProgressFilter(io.TextIOBase):
    """A stdout that keeps MMEngine's iteration lines (loss, ETA, val metrics) and warnings, and drops the
    config and environment dumps that every run logs (they stay in the run's log file)."""

    KEEP = re.compile(r'Iter\((train|val|test)\)|WARNING|ERROR|Traceback')
    # Benign warnings of the OpenMMLab stack that every run repeats.
    DROP = re.compile(r'The prefix is not set in metric class|"FileClient" will be deprecated|'
                      r'"HardDiskBackend" is the alias')

    def __init__(self, out):
        self.out, self.buffer = out, ''

    def write(self, text):
        self.buffer += text
        *lines, self.buffer = self.buffer.split('\n')
        for line in lines:
            if self.KEEP.search(line) and not self.DROP.search(line):
                self.out.write('    ' + line.split(' - mmengine - ')[-1] + '\n')
        self.out.flush()
        return len(text)

    def flush(self):
        self.out.flush()


class Demo:

    def __init__(self, work_dir, data_root, schedule, methods, verbose=False, overrides=None):
        self.work_dir, self.data_root = work_dir, data_root
        self.schedule, self.methods, self.verbose = schedule, methods, verbose
        self.overrides = dict(overrides or {})  # cfg options of every distilled method
        self.train_tool, self.test_tool = _load_tool('train'), _load_tool('test')

    def _quiet(self):
        return redirect_stdout(sys.stdout if self.verbose else ProgressFilter(sys.stdout))

    @staticmethod
    def schedule_options(iters) -> dict:
        """Overrides that set the schedule length (None: the config's own)."""
        if iters is None:
            return {}
        return {'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
                'param_scheduler.0.end': iters, 'default_hooks.checkpoint.interval': iters}

    def data_options(self) -> dict:
        return {f'{split}_dataloader.dataset.data_root': self.data_root for split in ('train', 'val', 'test')}

    def train(self, config, run_dir, options):
        """tools/train.py on ``config``; returns (final checkpoint, seconds)."""
        start = time.time()
        name = f'{osp.basename(run_dir)}_{time.strftime("%Y%m%d_%H%M%S")}'
        with self._quiet():
            self.train_tool.main([config, '--work-dir', run_dir, '--cfg-options', f'experiment_name={name}',
                                  *as_argv(self.data_options()), *as_argv(options)])
        return last_checkpoint(run_dir), time.time() - start

    def evaluate(self, config, checkpoint, run_dir):
        """tools/test.py (MMSeg's IoUMetric on the val scenes); returns the metrics."""
        name = f'{osp.basename(run_dir)}_test_{time.strftime("%Y%m%d_%H%M%S")}'
        with self._quiet():
            return self.test_tool.main([config, checkpoint, '--work-dir', osp.join(run_dir, 'test'),
                                        '--cfg-options', f'experiment_name={name}',
                                        *as_argv(self.data_options())])

    def run_dir(self, method, seed):
        name = method.key
        if method.distilled and self.overrides:
            name += '-' + hashlib.sha1(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[:8]
        return osp.join(self.work_dir, name, f'seed{seed}')

    # -- stages ------------------------------------------------------------------------------------------

    def prepare_data(self):
        start = time.time()
        _, generated = prepare_digit_scenes(self.data_root, **self.schedule.data)
        meta = read_meta(self.data_root)
        what = 'generated' if generated else 'reused'
        stage(f'1/6 data: {what} {meta["num_train"]} train + {meta["num_val"]} val digit scenes '
              f'({meta["size"]}x{meta["size"]}, generator v{meta["generator_version"]}) in {self.data_root} '
              f'[{fmt_duration(time.time() - start)}]')
        return meta

    def teacher(self, data_meta):
        options = self.schedule_options(self.schedule.teacher_iters)
        run_dir = osp.join(self.work_dir, 'teachers', f'{_stem(TEACHER_CONFIG)}-{teacher_key(options, data_meta)}')
        checkpoint = last_checkpoint(run_dir)
        result_file = osp.join(run_dir, 'teacher.json')
        if checkpoint and osp.isfile(result_file):
            with open(result_file) as f:
                result = json.load(f)
            stage(f'2/6 teacher: reusing {checkpoint} (same config and data), val mIoU {result["mIoU"]:.2f}')
            return dict(result, reused=True)
        stage(f'2/6 teacher: training {_stem(TEACHER_CONFIG)} -> {run_dir}')
        checkpoint, seconds = self.train(TEACHER_CONFIG, run_dir, dict(options, **{'randomness.seed': 0}))
        metrics = self.evaluate(TEACHER_CONFIG, checkpoint, run_dir)
        result = dict(checkpoint=checkpoint, mIoU=float(metrics['mIoU']), seconds=seconds,
                      iters=Config.fromfile(TEACHER_CONFIG).train_cfg.max_iters
                      if self.schedule.teacher_iters is None else self.schedule.teacher_iters)
        with open(result_file, 'w') as f:
            json.dump(result, f, indent=1)
        stage(f'2/6 teacher: val mIoU {result["mIoU"]:.2f}, trained in {fmt_duration(seconds)}')
        return dict(result, reused=False)

    def students(self, teacher, data_meta):
        """Train and evaluate every (method, seed); a run already finished with the same resolved config,
        overrides and data (``result.json`` in its run dir) is reused, so an interrupted demo continues."""
        runs = [(method, seed) for method in self.methods for seed in self.schedule.seeds]
        results, start = [], time.time()
        options = self.schedule_options(self.schedule.student_iters)
        for i, (method, seed) in enumerate(runs, 1):
            run_dir = self.run_dir(method, seed)
            label = method_label(method, self.overrides)
            run_options = dict(options, **{'randomness.seed': seed})
            if method.distilled:
                run_options['model.teacher_checkpoint'] = teacher['checkpoint']
                run_options.update(self.overrides)
            key = run_key(method.config, run_options, data_meta)
            result_file = osp.join(run_dir, 'result.json')
            previous = read_json(result_file)
            if previous and previous.get('key') == key and last_checkpoint(run_dir):
                results.append(dict(previous['result'], run_dir=run_dir))
                stage(f'4/6 {label}, seed {seed}: reusing {run_dir} (same config and data), '
                      f'mIoU {previous["result"]["mIoU"]:.2f}')
                continue
            stage(f'3/6 train {i}/{len(runs)}: {label}, seed {seed} -> {run_dir}')
            checkpoint, seconds = self.train(method.config, run_dir, run_options)
            metrics = self.evaluate(method.config, checkpoint, run_dir)
            results.append(dict(method=method.key, seed=seed, mIoU=float(metrics['mIoU']), seconds=seconds,
                                run_dir=run_dir))
            with open(result_file, 'w') as f:
                json.dump(dict(key=key, result=results[-1]), f, indent=1)
            elapsed = time.time() - start
            stage(f'4/6 evaluated {label}, seed {seed}: mIoU {metrics["mIoU"]:.2f} '
                  f'(trained in {fmt_duration(seconds)}; remaining runs about '
                  f'{fmt_duration(elapsed / i * (len(runs) - i))})')
        return results

    def run(self):
        start = time.time()
        os.makedirs(self.work_dir, exist_ok=True)
        data_meta = self.prepare_data()
        teacher = self.teacher(data_meta)
        runs = self.students(teacher, data_meta)
        partitions = draw_partitions(self, teacher, runs)
        summary = dict(command=' '.join(['python', 'tools/demo.py'] + sys.argv[1:]), data=data_meta,
                       teacher=teacher, runs=runs, overrides=self.overrides, seeds=list(self.schedule.seeds),
                       partitions=partitions,
                       student_iters=self.schedule.student_iters or
                       Config.fromfile(self.methods[0].config).train_cfg.max_iters,
                       total_seconds=time.time() - start, machine=machine())
        with open(osp.join(self.work_dir, 'results.json'), 'w') as f:
            json.dump(summary, f, indent=1)
        table = results_markdown(summary, self.methods)
        with open(osp.join(self.work_dir, 'results.md'), 'w') as f:
            f.write(table)
        stage(f'6/6 results: {osp.join(self.work_dir, "results.md")} (total {fmt_duration(time.time() - start)})')
        print(table, flush=True)
        return summary


def draw_partitions(demo, teacher, runs, num_images=4):
    """Pictures of GDKD's teacher top-k partitions (and the GDKD loss of the GDKD student, seed 0) on the
    first val scenes, with tools/visualize_partitions.py; teacher panels only when GDKD was not run."""
    out_dir = osp.join(demo.work_dir, 'partitions')
    config, checkpoint, options = partition_source(demo.methods, demo.schedule.seeds[0], teacher, runs)
    options = dict(options, **demo.overrides) if config != TEACHER_CONFIG else options
    tool = _load_tool('visualize_partitions')
    images = sorted(os.listdir(osp.join(demo.data_root, 'img_dir', 'val')))[:num_images]
    with demo._quiet():
        for name in images:
            tool.main([config, checkpoint, '--img', osp.join(demo.data_root, 'img_dir', 'val', name),
                       '--ann', osp.join(demo.data_root, 'ann_dir', 'val', name), '--out', out_dir,
                       '--device', 'cpu', '--panel-width', '256', '--cfg-options',
                       *as_argv(dict(options, **demo.data_options()))])
    stage(f'5/6 partitions: {len(images)} val scenes drawn by tools/visualize_partitions.py in {out_dir}')
    return out_dir


def partition_source(methods, seed, teacher, runs):
    """``(config, checkpoint, cfg options)`` for the partition pictures: the GDKD student of ``seed`` with
    its teacher when GDKD ran, else the teacher alone (a plain MMSeg model: no teacher_checkpoint)."""
    gdkd = next((m for m in methods if m.key == 'GDKD'), None)
    run = next((r for r in runs if r['method'] == 'GDKD' and r['seed'] == seed), None)
    if gdkd is not None and run is not None:
        return gdkd.config, last_checkpoint(run['run_dir']), {'model.teacher_checkpoint': teacher['checkpoint']}
    return TEACHER_CONFIG, teacher['checkpoint'], {}


def last_checkpoint(run_dir) -> Optional[str]:
    """The checkpoint MMEngine's CheckpointHook recorded last in ``run_dir``, or None."""
    pointer = osp.join(run_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


def run_key(config: str, options: dict, data_meta: dict) -> str:
    """A hash of everything a run depends on: its resolved config (with overrides) and the data."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    text = cfg.pretty_text + json.dumps(data_meta, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def teacher_key(options: dict, data_meta: dict) -> str:
    return run_key(TEACHER_CONFIG, options, data_meta)


def read_json(path) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def as_argv(options: dict) -> List[str]:
    return [f'{key}={value}' for key, value in options.items()]


def _stem(path):
    return osp.splitext(osp.basename(path))[0]


def machine():
    return dict(cpu=platform.processor() or platform.machine(), torch_threads=torch.get_num_threads(),
                cpu_count=os.cpu_count(), torch=torch.__version__)


def method_label(method, overrides) -> str:
    return method.label + (' + overrides' if overrides and method.distilled else '')


def results_markdown(summary, methods) -> str:
    """The results table: mIoU mean ± sample std over seeds, per-seed values, gain over the baseline."""
    by_method: Dict[str, list] = {}
    for run in summary['runs']:
        by_method.setdefault(run['method'], []).append(run)
    base = [r['mIoU'] for r in by_method[methods[0].key]]
    teacher, data, overrides = summary['teacher'], summary['data'], summary.get('overrides')
    lines = [
        '# Embedded demo: distillation on digit scenes',
        '',
        f'Command: `{summary["command"]}` ({fmt_duration(summary["total_seconds"])} in all on '
        f'{summary["machine"]["torch_threads"]} CPU threads).',
        '',
        f'Data: digit scenes v{data["generator_version"]}, {data["num_train"]} train / {data["num_val"]} val '
        f'scenes of {data["size"]}x{data["size"]} px from disjoint real digit scans. '
        f'Every student: {summary["student_iters"]} iterations, batch 16, same lr, seeds '
        f'{", ".join(str(s) for s in summary["seeds"])}. mIoU on the val scenes (MMSeg IoUMetric, 11 classes).',
        '',
        *([f'Overrides of every distilled method: {", ".join(f"`{k}={v}`" for k, v in overrides.items())}.', '']
          if overrides else []),
        f'Teacher ({_stem(TEACHER_CONFIG)}, {teacher["iters"]} iterations): mIoU {teacher["mIoU"]:.2f}'
        + (' (reused)' if teacher.get('reused') else f', trained in {fmt_duration(teacher["seconds"])}') + '.',
        '',
        '| method | mIoU (mean ± std) | per seed | gain over student | wall-clock per run |',
        '|---|---|---|---|---|',
    ]
    for method in methods:
        runs = by_method.get(method.key, [])
        if not runs:
            continue
        values = [r['mIoU'] for r in runs]
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        gain = '—' if method.key == methods[0].key else f'{mean - statistics.fmean(base):+.2f}'
        seconds = statistics.fmean(r['seconds'] for r in runs)
        label = method_label(method, overrides)
        lines.append(f'| {label} | {mean:.2f} ± {std:.2f} | {" / ".join(f"{v:.2f}" for v in values)} '
                     f'| {gain} | {fmt_duration(seconds)} |')
    return '\n'.join(lines) + '\n'


def parse_overrides(items) -> Dict[str, str]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise SystemExit(f'demo.py: --cfg-options takes KEY=VALUE items, got {item!r} '
                             '(e.g. model.distill_losses.0.loss.loss_weight=5)')
        overrides[key] = value
    return overrides


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='a few iterations on fewer scenes, two seeds (a smoke test, about 2 minutes)')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where runs and results.md go')
    parser.add_argument('--data-root', default='data/digit_scenes', help='where the digit scenes are written')
    parser.add_argument('--seeds', type=int, nargs='+', help='seeds of the student runs (default 0 1 2)')
    parser.add_argument('--methods', nargs='+', choices=[m.key for m in METHODS],
                        help='the methods to run (the student alone always runs); default: '
                        + ' '.join(m.key for m in DEFAULT_METHODS[1:]))
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='overrides of every distilled method\'s config, in tools/train.py\'s syntax, e.g. '
                        'model.distill_losses.0.loss.topk=5 (the student alone keeps its config)')
    parser.add_argument('--data-only', action='store_true', help='write the digit scenes and stop')
    parser.add_argument('--verbose', action='store_true', help='show the full MMEngine logs')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.verbose:
        warnings.filterwarnings('ignore', message='``build_loss`` would be deprecated')
    schedule = QUICK if args.quick else FULL
    if args.quick and args.data_root == 'data/digit_scenes':
        args.data_root = 'data/digit_scenes_quick'  # smaller settings: keep the full set's cache intact
    if args.seeds:
        schedule = schedule._replace(seeds=tuple(args.seeds))
    methods = [m for m in METHODS
               if m is METHODS[0] or (m.key in args.methods if args.methods else m.default)]
    demo = Demo(args.work_dir, args.data_root, schedule, methods, args.verbose, parse_overrides(args.cfg_options))
    if args.data_only:
        demo.prepare_data()
        return None
    return demo.run()


if __name__ == '__main__':
    main()
