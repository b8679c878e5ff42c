"""The embedded demo's runs: data, teacher, every method and seed, partition pictures (``tools/demo.py``).

Every run goes through a config of ``configs/demo/`` and :func:`gdkd_seg.runner.train` /
:func:`gdkd_seg.runner.test`, as Cityscapes does. A config takes part in the demo when it declares
``demo_method = dict(key=..., label=..., order=..., default=True|False)``; the lowest ``order`` is the
baseline (the student alone) that the gains are measured against.
"""

import glob
import hashlib
import io
import json
import multiprocessing
import os
import os.path as osp
import platform
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stdout
from typing import List, NamedTuple, Optional

import torch
from mmengine.config import Config

from .. import runner
from ..cache_builder import build_teacher_cache
from ..datasets import prepare_digit_scenes
from ..datasets.digit_scenes import read_meta
from ..deploy import cost_table_markdown, model_cost
from ..utils import atomic_write, file_sha256
from ..visualization import visualize_partitions
from .curves import plot_curves
from .report import curve_sets, fmt_duration, method_label, results_markdown, stage

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'demo')
TEACHER_CONFIG = osp.join(CONFIG_DIR, 'teacher_deeplabv3_r18w32_digits.py')


class Method(NamedTuple):
    """One row of the results table: a config trained for every seed (``distilled`` ones get the teacher)."""

    key: str
    label: str
    config: str
    distilled: bool
    default: bool  # run unless --methods names a subset; the others only when named
    order: int
    seeds: Optional[int] = None  # run for the first N of the demo's seeds only (None: all)
    cached: bool = False  # a distiller from the teacher cache (no teacher network in training)


def demo_methods(config_dir: str = CONFIG_DIR) -> List[Method]:
    """The configs of ``config_dir`` that declare ``demo_method``, in their ``order``."""
    methods = []
    for path in sorted(glob.glob(osp.join(config_dir, '*.py'))):
        cfg = Config.fromfile(path)
        info = cfg.get('demo_method')
        if info is not None:
            methods.append(
                Method(
                    info['key'],
                    info['label'],
                    path,
                    cfg.model.type == 'SegDistiller',
                    bool(info.get('default', False)),
                    int(info['order']),
                    info.get('seeds'),
                    bool(cfg.model.get('teacher_cache')),
                )
            )
    if not methods:
        raise FileNotFoundError(f'no config in {config_dir} declares demo_method')
    return sorted(methods, key=lambda m: m.order)


class Schedule(NamedTuple):
    teacher_iters: Optional[int]  # None: the config's
    student_iters: Optional[int]
    seeds: tuple
    data: dict  # digit-scene settings (gdkd_seg.datasets.digit_scenes.DEFAULT_SETTINGS)
    val_every: int  # iterations between the validations that make the students' curves
    teacher_val_every: int  # and the teacher's
    report: str = 'results'  # results.md, results.json and the curves' PNG get this name


# ``--full``: the schedules of the configs (the benchmark of docs/demo.md); ``make demo``: a ninth of the
# teacher's schedule and 1.25% of the students' (25 minutes on 2 cores); ``--quick``: a smoke test of every stage
# (its numbers mean nothing).
FULL = Schedule(None, None, seeds=(0, 1, 2), data={}, val_every=2000, teacher_val_every=750, report='results_full')
DEMO = Schedule(2000, 600, seeds=(0, 1, 2), data={}, val_every=100, teacher_val_every=500)
QUICK = Schedule(120, 60, seeds=(0, 1), data=dict(num_train=400, num_val=100), val_every=20, teacher_val_every=40)


class ProgressFilter(io.TextIOBase):
    """A stdout that keeps MMEngine's iteration lines (loss, ETA, val metrics) and warnings, and drops the
    config and environment dumps that every run logs (they stay in the run's log file)."""

    KEEP = re.compile(r'Iter\((train|val|test)\)|WARNING|ERROR|Traceback')
    # Benign warnings of the OpenMMLab stack that every run repeats.
    DROP = re.compile(
        r'The prefix is not set in metric class|"FileClient" will be deprecated|'
        r'"HardDiskBackend" is the alias'
    )

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


def schedule_options(config: str, iters: Optional[int], val_every: int) -> dict:
    """Overrides that set the schedule length (None: the config's own) and validate every ``val_every``
    iterations into ``timeline.json`` (``ValTimelineHook``)."""
    cfg = Config.fromfile(config)
    iters = iters or cfg.train_cfg.max_iters
    hooks = [h for h in cfg.get('custom_hooks') or [] if h.get('type') != 'ValTimelineHook']
    return {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': val_every,
        'param_scheduler.0.end': iters,
        'default_hooks.checkpoint.interval': iters,
        'custom_hooks': hooks + [dict(type='ValTimelineHook')],
    }


def read_timeline(run_dir: str) -> List[dict]:
    with open(osp.join(run_dir, 'timeline.json')) as f:
        return json.load(f)


def last_checkpoint(run_dir: str) -> Optional[str]:
    """The checkpoint MMEngine's CheckpointHook recorded last in ``run_dir``, or None."""
    pointer = osp.join(run_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


KEEP_CHECKPOINTS = {'default_hooks.checkpoint.max_keep_ckpts': 2}  # the latest, and one to fall back on


def prepare_run_dir(run_dir: str, key: str) -> bool:
    """Make ``run_dir`` ready for a run of ``key``; True when it holds an interrupted run of that key to resume.
    For another key (or none recorded) it forgets the old run's ``last_checkpoint``, so a new run killed before
    its first checkpoint cannot later resume from the old one."""
    os.makedirs(run_dir, exist_ok=True)
    key_file = osp.join(run_dir, 'run_key')
    previous = None
    if osp.isfile(key_file):
        with open(key_file) as f:
            previous = f.read().strip()
    if previous == key:
        return last_checkpoint(run_dir) is not None
    if osp.isfile(osp.join(run_dir, 'last_checkpoint')):
        os.remove(osp.join(run_dir, 'last_checkpoint'))
    atomic_write(key.encode(), key_file)
    return False


def pretrained_checkpoints(node) -> List[str]:
    """The local checkpoints a model config starts from: ``pretrained=`` and ``init_cfg=dict(type='Pretrained')``."""
    found = []
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and node.get('checkpoint'):
            found.append(node['checkpoint'])
        if isinstance(node.get('pretrained'), str):
            found.append(node['pretrained'])
        for value in node.values():
            found += pretrained_checkpoints(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += pretrained_checkpoints(value)
    return [path for path in found if '://' not in path]


def run_key(config: str, options: dict, data_meta: dict) -> str:
    """A hash of everything a run depends on: its resolved config (with overrides), the data, and the contents of
    the checkpoints it starts from (a re-exported backbone makes a new run, not a stale reuse)."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    starts = {}
    for path in pretrained_checkpoints(cfg.model):
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{config} starts from {path}, which does not exist: make it first '
                '(docs/pretraining.md: train the crops classifier, then tools/export_backbone.py)'
            )
        starts[path] = file_sha256(path)
    text = cfg.pretty_text + json.dumps(data_meta, sort_keys=True)
    if starts:  # (keys of runs from scratch stay as they were)
        text += json.dumps(starts, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def teacher_key(options: dict, data_meta: dict) -> str:
    return run_key(TEACHER_CONFIG, options, data_meta)


def read_json(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def machine() -> dict:
    return dict(
        cpu=platform.processor() or platform.machine(),
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
    )


class Demo:
    """The whole pipeline on digit scenes: :meth:`run` does the six stages and writes the report."""

    def __init__(
        self,
        work_dir: str,
        data_root: str,
        schedule: Schedule,
        methods: List[Method],
        verbose: bool = False,
        overrides: Optional[dict] = None,
        all_methods: Optional[List[Method]] = None,
        jobs: int = 1,
    ):
        self.work_dir, self.data_root = work_dir, data_root
        self.schedule, self.methods, self.verbose = schedule, methods, verbose
        self.overrides = dict(overrides or {})  # cfg options of every distilled method
        self.all_methods = all_methods or methods
        if jobs < 1:
            raise ValueError(f'jobs must be >= 1, got {jobs}')
        self.jobs = jobs  # runs trained at once (one CPU thread each when > 1)

    def _quiet(self):
        return redirect_stdout(sys.stdout if self.verbose else ProgressFilter(sys.stdout))

    def data_options(self) -> dict:
        return {f'{split}_dataloader.dataset.data_root': self.data_root for split in ('train', 'val', 'test')}

    def train(self, config: str, run_dir: str, options: dict, key: str):
        """Train ``config`` into ``run_dir``; returns (final checkpoint, seconds). The run writes a checkpoint at
        every validation (the last two kept) and continues from the latest one when ``run_dir`` holds an
        interrupted run of the same ``key``; a run of another key is started afresh."""
        start = time.time()
        resume = prepare_run_dir(run_dir, key)
        if resume:
            stage(f'continuing the interrupted run from {last_checkpoint(run_dir)}')
        name = f'{osp.basename(run_dir)}_{time.strftime("%Y%m%d_%H%M%S")}'
        # Outside the key: how often a run saves does not change what it learns.
        saving = {'default_hooks.checkpoint.interval': options['train_cfg.val_interval'], **KEEP_CHECKPOINTS}
        with self._quiet():
            runner.train(
                config,
                {**self.data_options(), 'experiment_name': name, **options, **saving},
                work_dir=run_dir,
                resume=resume,
            )
        return last_checkpoint(run_dir), time.time() - start

    def run_dir(self, method: Method, seed: int) -> str:
        name = method.key
        if method.distilled and self.overrides:
            name += '-' + hashlib.sha1(json.dumps(self.overrides, sort_keys=True).encode()).hexdigest()[:8]
        return osp.join(self.work_dir, f'{self.student_iters()}it', name, f'seed{seed}')

    # -- stages ------------------------------------------------------------------------------------------

    def prepare_data(self) -> dict:
        start = time.time()
        _, generated = prepare_digit_scenes(self.data_root, **self.schedule.data)
        meta = read_meta(self.data_root)
        what = 'generated' if generated else 'reused'
        stage(
            f'1/6 data: {what} {meta["num_train"]} train + {meta["num_val"]} val digit scenes '
            f'({meta["size"]}x{meta["size"]}, generator v{meta["generator_version"]}) in {self.data_root} '
            f'[{fmt_duration(time.time() - start)}]'
        )
        return meta

    def teacher(self, data_meta: dict) -> dict:
        options = schedule_options(TEACHER_CONFIG, self.schedule.teacher_iters, self.schedule.teacher_val_every)
        key = teacher_key(options, data_meta)
        run_dir = osp.join(self.work_dir, 'teachers', f'{_stem(TEACHER_CONFIG)}-{key}')
        checkpoint = last_checkpoint(run_dir)
        result_file = osp.join(run_dir, 'teacher.json')
        if checkpoint and osp.isfile(result_file):
            result = read_json(result_file)
            stage(f'2/6 teacher: reusing {checkpoint} (same config and data), val mIoU {result["mIoU"]:.2f}')
            return dict(result, reused=True)
        stage(f'2/6 teacher: training {_stem(TEACHER_CONFIG)} -> {run_dir}')
        checkpoint, seconds = self.train(TEACHER_CONFIG, run_dir, dict(options, **{'randomness.seed': 0}), key)
        timeline = read_timeline(run_dir)
        result = dict(
            checkpoint=checkpoint,
            mIoU=timeline[-1]['mIoU'],
            seconds=timeline[-1]['train_seconds'],
            iters=options['train_cfg.max_iters'],
            timeline=timeline,
        )
        with open(result_file, 'w') as f:
            json.dump(result, f, indent=1)
        stage(f'2/6 teacher: val mIoU {result["mIoU"]:.2f}, trained in {fmt_duration(seconds)}')
        return dict(result, reused=False)

    def student_iters(self) -> int:
        return self.schedule.student_iters or Config.fromfile(self.all_methods[0].config).train_cfg.max_iters

    def teacher_cache(self, teacher: dict, data_meta: dict):
        """The teacher's cached logits of the train scenes (``tools/cache_teacher.py``), built once per teacher:
        ``(folder, seconds the build took)``."""
        cached = next(m for m in self.all_methods if m.cached)
        folder = osp.join(self.work_dir, 'teacher_cache', osp.basename(osp.dirname(teacher['checkpoint'])))
        done = read_json(osp.join(folder, 'build.json'))
        if done is not None:
            return folder, done['seconds']
        stage(f'3/6 teacher cache: running the teacher over the train scenes -> {folder}')
        start = time.time()
        with self._quiet():
            build_teacher_cache(
                cached.config, folder, dict(self.data_options(), **{'model.teacher_checkpoint': teacher['checkpoint']})
            )
        seconds = time.time() - start
        with open(osp.join(folder, 'build.json'), 'w') as f:
            json.dump(dict(seconds=seconds), f)
        stage(f'3/6 teacher cache: built in {fmt_duration(seconds)}')
        return folder, seconds

    def method_options(self, method: Method, seed: int, teacher: dict, data_meta: dict, options: dict) -> dict:
        """The cfg options of one run of ``method``: seed, and for distilled ones the teacher (its checkpoint,
        or its cached logits) and the sweep's overrides."""
        run_options = dict(options, **{'randomness.seed': seed})
        if method.distilled:
            run_options['model.teacher_checkpoint'] = teacher['checkpoint']
            if method.cached:
                run_options['model.teacher_cache'] = self.teacher_cache(teacher, data_meta)[0]
            run_options.update(self.overrides)
        return run_options

    def method_seeds(self, method: Method) -> tuple:
        return self.schedule.seeds[: method.seeds] if method.seeds else self.schedule.seeds

    def planned_runs(self, teacher: dict, data_meta: dict) -> List[dict]:
        """Every (method, seed) with its run dir, cfg options and key (its resolved config and data)."""
        plans = []
        for method in self.methods:
            options = schedule_options(method.config, self.schedule.student_iters, self.schedule.val_every)
            for seed in self.method_seeds(method):
                run_options = self.method_options(method, seed, teacher, data_meta, options)
                plans.append(
                    dict(
                        method=method,
                        seed=seed,
                        run_dir=self.run_dir(method, seed),
                        options=run_options,
                        key=run_key(method.config, run_options, data_meta),
                    )
                )
        return plans

    def students(self, teacher: dict, data_meta: dict) -> List[dict]:
        """Train every (method, seed) with a validation every ``val_every`` iterations: each run's curve
        (``timeline.json``) and its final val mIoU (MMSeg's IoUMetric). A run already finished with the same
        resolved config, overrides and data (``result.json`` in its run dir) is reused, so an interrupted demo
        continues from the runs it finished. With ``jobs > 1`` that many runs train at once, one CPU thread
        each (the live-teacher runs first, so that no run has the machine to itself for long)."""
        plans = self.planned_runs(teacher, data_meta)
        results = {}
        for plan in plans:
            previous = read_json(osp.join(plan['run_dir'], 'result.json'))
            if previous and previous.get('key') == plan['key']:
                results[plan['run_dir']] = dict(previous['result'], run_dir=plan['run_dir'])
                stage(f'4/6 {self._label(plan)}: reusing {plan["run_dir"]}, mIoU {previous["result"]["mIoU"]:.2f}')
        todo = sorted((p for p in plans if p['run_dir'] not in results), key=lambda p: not _live(p['method']))
        start = time.time()
        for done, (plan, timeline) in enumerate(self._train_all(todo), 1):
            result = dict(
                method=plan['method'].key,
                seed=plan['seed'],
                mIoU=timeline[-1]['mIoU'],
                seconds=timeline[-1]['train_seconds'],
                run_dir=plan['run_dir'],
                timeline=timeline,
            )
            with open(osp.join(plan['run_dir'], 'result.json'), 'w') as f:
                json.dump(dict(key=plan['key'], result=result), f, indent=1)
            results[plan['run_dir']] = result
            stage(
                f'4/6 {self._label(plan)}: mIoU {result["mIoU"]:.2f} after {fmt_duration(result["seconds"])} of '
                f'training; remaining runs about {fmt_duration((time.time() - start) / done * (len(todo) - done))}'
            )
        return [results[p['run_dir']] for p in plans]

    def _label(self, plan: dict) -> str:
        return f'{method_label(plan["method"], self.overrides)}, seed {plan["seed"]}'

    def _train_all(self, plans: List[dict]):
        """``(plan, timeline)`` of every run as it finishes: here one after the other, or in ``jobs`` processes."""
        if self.jobs == 1 or len(plans) < 2:
            for i, plan in enumerate(plans, 1):
                stage(f'4/6 train {i}/{len(plans)}: {self._label(plan)} -> {plan["run_dir"]}')
                self.train(plan['method'].config, plan['run_dir'], plan['options'], plan['key'])
                yield plan, read_timeline(plan['run_dir'])
            return
        stage(f'4/6 training {len(plans)} runs, {self.jobs} at a time (one CPU thread each)')
        context = multiprocessing.get_context('fork')
        with ProcessPoolExecutor(
            self.jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)
        ) as pool:
            futures = {
                pool.submit(self.train, p['method'].config, p['run_dir'], p['options'], p['key']): p for p in plans
            }
            for future in as_completed(futures):
                future.result()  # a failed run stops the demo with its error
                yield futures[future], read_timeline(futures[future]['run_dir'])

    def partitions(self, teacher: dict, runs: List[dict], num_images: int = 4) -> str:
        """Pictures of GDKD's teacher top-k partitions (and the GDKD loss of the GDKD student, first seed)
        on the first val scenes; teacher panels only when GDKD was not run."""
        out_dir = osp.join(self.work_dir, 'partitions')
        config, checkpoint, options = partition_source(self.methods, self.schedule.seeds[0], teacher, runs)
        if config != TEACHER_CONFIG:
            options = dict(options, **self.overrides)
        images = sorted(os.listdir(osp.join(self.data_root, 'img_dir', 'val')))[:num_images]
        with self._quiet():
            for name in images:
                visualize_partitions(
                    config,
                    checkpoint,
                    osp.join(self.data_root, 'img_dir', 'val', name),
                    out_dir,
                    ann=osp.join(self.data_root, 'ann_dir', 'val', name),
                    device='cpu',
                    panel_width=256,
                    options=dict(options, **self.data_options()),
                )
        stage(f'5/6 partitions: {len(images)} val scenes drawn in {out_dir}')
        return out_dir

    def cost(self, data_meta: dict) -> str:
        """The teacher's and the student's parameters, FLOPs and CPU latency per scene (PyTorch, onnxruntime), as a
        Markdown table. Weights do not change them, so the GDKD config is measured with random ones."""
        gdkd = next((m for m in self.all_methods if m.key == 'GDKD'), self.all_methods[0])
        size = (data_meta['size'], data_meta['size'])
        with redirect_stdout(ProgressFilter(sys.stdout)):
            report = model_cost(osp.relpath(gdkd.config), size=size, runs=20, warmup=3)
        command = (
            f'python tools/model_cost.py {osp.relpath(gdkd.config)} --size {size[0]} {size[1]} --runs 20 --warmup 3'
        )
        stage('5/6 cost: teacher and student parameters, FLOPs and latency measured')
        return cost_table_markdown(report, command)

    def run(self) -> dict:
        start = time.time()
        os.makedirs(self.work_dir, exist_ok=True)
        data_meta = self.prepare_data()
        teacher = self.teacher(data_meta)
        cache_seconds = None
        if any(m.cached for m in self.methods):
            cache_seconds = self.teacher_cache(teacher, data_meta)[1]
        runs = self.students(teacher, data_meta)
        partitions = self.partitions(teacher, runs)
        cost = self.cost(data_meta)
        summary = dict(
            command=' '.join(['python', 'tools/demo.py'] + sys.argv[1:]),
            data=data_meta,
            teacher=teacher,
            teacher_config=_stem(TEACHER_CONFIG),
            cache_seconds=cache_seconds,
            runs=runs,
            overrides=self.overrides,
            seeds=list(self.schedule.seeds),
            val_every=self.schedule.val_every,
            partitions=partitions,
            cost_table=cost,
            student_iters=self.student_iters(),
            jobs=self.jobs,
            machine=machine(),
        )
        summary['curves_png'] = plot_curves(
            curve_sets(summary, self.methods),
            teacher['mIoU'],
            osp.join(self.work_dir, f'{self.schedule.report}_curves.png'),
            title=f'Digit scenes: val mIoU against training time ({summary["student_iters"]} iterations)',
        )
        summary['total_seconds'] = time.time() - start
        report = osp.join(self.work_dir, self.schedule.report)
        with open(report + '.json', 'w') as f:
            json.dump(summary, f, indent=1)
        table = results_markdown(summary, self.methods)
        with open(report + '.md', 'w') as f:
            f.write(table)
        stage(f'6/6 results: {report}.md and {summary["curves_png"]} (total {fmt_duration(time.time() - start)})')
        print(table, flush=True)
        return summary


def _live(method: Method) -> bool:
    return method.distilled and not method.cached


def partition_source(methods: List[Method], seed: int, teacher: dict, runs: List[dict]):
    """``(config, checkpoint, cfg options)`` for the partition pictures: the GDKD student of ``seed`` with
    its teacher when GDKD ran, else the teacher alone (a plain MMSeg model: no teacher_checkpoint)."""
    gdkd = next((m for m in methods if m.key == 'GDKD'), None)
    run = next((r for r in runs if r['method'] == 'GDKD' and r['seed'] == seed), None)
    if gdkd is not None and run is not None:  # the live teacher draws its partitions, not the cache
        options = {'model.teacher_checkpoint': teacher['checkpoint'], 'model.teacher_cache': None}
        return gdkd.config, last_checkpoint(run['run_dir']), options
    return TEACHER_CONFIG, teacher['checkpoint'], {}
