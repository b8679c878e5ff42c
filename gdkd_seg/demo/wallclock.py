"""The demo's comparison at matched wall-clock (``tools/demo.py --wall-clock``): a distiller costs more per
step than the student alone, so it has to beat a student trained for as long as it takes, not only one
trained for as many iterations.

Runs, for every seed: the student alone for the demo's iterations; GDKD with the live teacher; GDKD from the
cached teacher logits (the cache built once beforehand, its time reported apart); and the student alone for
as many iterations as fit in each GDKD run's training time (its time per iteration taken from its own run
at the demo's iterations). Every run validates every ``VAL_EVERY`` iterations and records the training time
(validation excluded) at each validation (``ValTimelineHook``), which the plot draws.
"""

import json
import os.path as osp
import statistics
import time
from typing import Dict, List

from mmengine.config import Config

from .report import fmt_duration, stage

VAL_EVERY = 100


def timeline_options(config: str, iters: int) -> dict:
    hooks = list(Config.fromfile(config).get('custom_hooks') or [])
    return {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': VAL_EVERY,
        'param_scheduler.0.end': iters,
        'default_hooks.checkpoint.interval': iters,
        'custom_hooks': hooks + [dict(type='ValTimelineHook')],
    }


def read_timeline(run_dir: str) -> List[dict]:
    with open(osp.join(run_dir, 'timeline.json')) as f:
        return json.load(f)


def summarize(rows: Dict[str, List[dict]]) -> List[dict]:
    """Per run label: iterations, final mIoU per seed, mean training seconds."""
    out = []
    for label, runs in rows.items():
        values = [r['timeline'][-1]['mIoU'] for r in runs]
        out.append(
            dict(
                label=label,
                iters=runs[0]['iters'],
                values=values,
                mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                seconds=statistics.fmean(r['timeline'][-1]['train_seconds'] for r in runs),
            )
        )
    return out


def wall_clock_markdown(summary: List[dict], cache_seconds: float, command: str) -> str:
    lines = [
        '# Matched wall-clock: the student alone for as long as GDKD trains',
        '',
        f'Command: `{command}`. Training time excludes validation (every {VAL_EVERY} iterations) and, for the '
        f'cached runs, the one-off cache build ({fmt_duration(cache_seconds)} for the 8,000 train scenes).',
        '',
        '| run | iterations | val mIoU (mean ± std) | per seed | training time per run |',
        '|---|---:|---|---|---:|',
    ]
    for row in summary:
        lines.append(
            f'| {row["label"]} | {row["iters"]} | {row["mean"]:.2f} ± {row["std"]:.2f} | '
            f'{" / ".join(f"{v:.2f}" for v in row["values"])} | {fmt_duration(row["seconds"])} |'
        )
    return '\n'.join(lines) + '\n'


def plot(rows: Dict[str, List[dict]], path: str) -> str:
    """Val mIoU against training time, the mean over seeds at each validation."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, runs in rows.items():
        points = min(len(r['timeline']) for r in runs)
        xs = [statistics.fmean(r['timeline'][i]['train_seconds'] for r in runs) for i in range(points)]
        ys = [statistics.fmean(r['timeline'][i]['mIoU'] for r in runs) for i in range(points)]
        ax.plot(xs, ys, marker='o', markersize=3, label=label)
    ax.set_xlabel('training time (s, validation excluded)')
    ax.set_ylabel('val mIoU (mean over seeds)')
    ax.set_title('Digit scenes: val mIoU against wall-clock')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_matched_wall_clock(demo, teacher: dict, data_meta: dict) -> dict:
    """The runs, the table (``wall_clock.md``), the plot (``wall_clock.png``) and ``wall_clock.json``."""

    methods = {m.key: m for m in demo.all_methods}
    student, live, cached = methods['student'], methods['GDKD'], methods['GDKD-cached']
    iters = demo.default_student_iters()
    start = time.time()
    cache_dir, cache_seconds = demo.teacher_cache(teacher, data_meta)
    rows: Dict[str, List[dict]] = {}

    def runs(label, method, n_iters):
        rows[label] = [
            dict(
                demo.timed_run(
                    method,
                    seed,
                    teacher,
                    data_meta,
                    timeline_options(method.config, n_iters),
                    f'{method.key}-{n_iters}it',
                ),
                iters=n_iters,
            )
            for seed in demo.schedule.seeds
        ]
        return rows[label]

    base = runs(f'student alone, {iters} it (as many iterations)', student, iters)
    per_iter = statistics.fmean(r['timeline'][-1]['train_seconds'] for r in base) / iters
    matched = {}
    for label, method in (('GDKD, live teacher', live), ('GDKD, cached teacher', cached)):
        done = runs(f'{label}, {iters} it', method, iters)
        matched[label] = round(statistics.fmean(r['timeline'][-1]['train_seconds'] for r in done) / per_iter)
    for label, n_iters in matched.items():
        runs(f'student alone, {n_iters} it (the time of {label})', student, n_iters)
    summary = summarize(rows)
    table = wall_clock_markdown(summary, cache_seconds, 'python tools/demo.py --wall-clock')
    with open(osp.join(demo.work_dir, 'wall_clock.md'), 'w') as f:
        f.write(table)
    with open(osp.join(demo.work_dir, 'wall_clock.json'), 'w') as f:
        json.dump(
            dict(
                rows=rows,
                summary=summary,
                cache_dir=cache_dir,
                cache_seconds=cache_seconds,
                seconds_per_student_iter=per_iter,
            ),
            f,
            indent=1,
        )
    picture = plot(rows, osp.join(demo.work_dir, 'wall_clock.png'))
    stage(f'wall-clock: {osp.join(demo.work_dir, "wall_clock.md")} and {picture} ({fmt_duration(time.time() - start)})')
    print(table, flush=True)
    return dict(summary=summary, cache_seconds=cache_seconds)
