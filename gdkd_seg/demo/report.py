"""The demo's report: ``results.md`` (the table users read) from the run summary (``results.json``)."""

import os.path as osp
import time
from typing import Dict, List, Optional

from . import curves


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 60}m{seconds % 60:02d}s' if seconds >= 60 else f'{seconds}s'


def method_label(method, overrides) -> str:
    return method.label + (' + overrides' if overrides and method.distilled else '')


def curve_sets(summary: dict, methods: List) -> Dict[str, List[List[dict]]]:
    """Label -> every seed's timeline, in the methods' order (the first is the baseline)."""
    out: Dict[str, List[List[dict]]] = {}
    for method in methods:
        timelines = [r['timeline'] for r in summary['runs'] if r['method'] == method.key]
        if timelines:
            out[method_label(method, summary.get('overrides'))] = timelines
    return out


def _threads(summary: dict) -> str:
    jobs = summary.get('jobs', 1)
    if jobs > 1:
        threads = summary['machine']['torch_threads']
        return f'the teacher on {threads} threads, the students {jobs} runs at a time, one thread each'
    return f'every run on {summary["machine"]["torch_threads"]} threads, one at a time'


def _percent(share: Optional[float]) -> str:
    return 'no gap' if share is None else f'{100 * share:.0f}%'


def _options(overrides: dict) -> str:
    return ', '.join(f'`{k}={v}`' for k, v in overrides.items())


def _fmt(value: Optional[curves.Stat]) -> str:
    return '—' if value is None else f'{value.mean:.2f} ± {value.std:.2f}'


def _versus(row: dict) -> str:
    versus = row['versus_baseline']
    if versus is None or not versus['compared']:
        return '—'
    return f'{versus["ahead"]}/{versus["compared"]} (min {versus["min_margin"]:+.2f})'


def _plateau_lines(summary: dict, student: List[List[dict]]) -> List[str]:
    """The plateau check: over the last quarter of its schedule a curve's trend (least-squares rise) and its
    max - min (trend and validation noise); the student's verdict is on the trend of its seeds' mean."""
    teacher = summary['teacher']
    mean = curves.mean_curve(student)
    trend, change = curves.plateau_trend(mean, key='mean'), curves.plateau_change(mean, key='mean')
    student_end = curves.final(student)
    gap = teacher['mIoU'] - student_end.mean
    teacher_tail = ''
    if teacher.get('timeline'):
        teacher_tail = (
            f', over its last quarter a trend of {curves.plateau_trend(teacher["timeline"]):+.2f} '
            f'(max - min {curves.plateau_change(teacher["timeline"]):.2f})'
        )
    return [
        f'Teacher ({summary["teacher_config"]}, {teacher["iters"]} iterations, seed 0): val mIoU {teacher["mIoU"]:.2f}'
        + teacher_tail
        + (' (reused)' if teacher.get('reused') else f', trained in {fmt_duration(teacher["seconds"])}')
        + '.',
        '',
        f'Student alone: {student_end.mean:.2f} ± {student_end.std:.2f}; over the last quarter of the schedule '
        f'the mean of its seeds has a trend of {trend:+.2f} (least-squares line; max - min {change:.2f}; per '
        f'seed {" / ".join(f"{curves.plateau_trend(run):+.2f}" for run in student)}): a plateau '
        f'(|trend| < {curves.PLATEAU_TOLERANCE}): {"yes" if abs(trend) < curves.PLATEAU_TOLERANCE else "no"}. '
        f'Teacher - student: {gap:.2f} mIoU.',
    ]


def results_markdown(summary: dict, methods: List) -> str:
    """The report: the plateau check, then per method its final mIoU (mean ± sample std over seeds), the gain
    over the baseline (the first method), its mIoU at the baseline's training time, the share of the
    teacher-student gap it closes, at how many of the baseline's validations it is ahead at equal wall-clock
    by more than two seed deviations, and its training time per run; then the cost table."""
    sets = curve_sets(summary, methods)
    baseline = next(iter(sets))
    rows = curves.summary_rows(sets, baseline, summary['teacher']['mIoU'])
    data, overrides = summary['data'], summary.get('overrides')
    base_mean = rows[0]['final'].mean
    lines = [
        '# Embedded demo: distillation on digit scenes, time to accuracy',
        '',
        f'Command: `{summary["command"]}` ({fmt_duration(summary["total_seconds"])} in all on '
        f'{summary["machine"]["cpu_count"]} CPU cores; ' + _threads(summary) + ').',
        '',
        f'Data: digit scenes v{data["generator_version"]}, {data["num_train"]} train / {data["num_val"]} val '
        f'scenes of {data["size"]}x{data["size"]} px from disjoint real digit scans. '
        f'Every student: {summary["student_iters"]} iterations, batch 16, same lr, seeds '
        f'{", ".join(str(s) for s in summary["seeds"])}; val mIoU (MMSeg IoUMetric, 11 classes) every '
        f'{summary["val_every"]} iterations. Training time: wall-clock of the training loop, data loading '
        'included, validation excluded'
        + (
            f'; the teacher cache is built once ({fmt_duration(summary["cache_seconds"])}) and not counted in the '
            'cached runs.'
            if summary.get('cache_seconds') is not None
            else '.'
        ),
        '',
        *(
            [f'Overrides of every distilled method: {", ".join(f"`{k}={v}`" for k, v in overrides.items())}.', '']
            if overrides
            else []
        ),
        *_plateau_lines(summary, sets[baseline]),
        '',
        "| method | seeds | mIoU (mean ± std) | per seed | gain over student | mIoU at the student's training time "
        '| gap closed | ahead at equal wall-clock | training time per run |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        gain = '—' if row['label'] == baseline else f'{row["final"].mean - base_mean:+.2f}'
        lines.append(
            f'| {row["label"]} | {row["seeds"]} | {_fmt(row["final"])} | '
            f'{" / ".join(f"{v:.2f}" for v in row["final"].values)} | {gain} | {_fmt(row["at_baseline_time"])} | '
            f'{_percent(row["gap_closed"])} | {_versus(row)} | {fmt_duration(row["seconds"])} |'
        )
    lines += [
        '',
        '"ahead at equal wall-clock": at how many of the student\'s validation times the method\'s mean is above '
        "the student's by more than twice the larger seed std (min: the smallest difference of the means).",
        '',
        f'![val mIoU against training time]({osp.basename(summary["curves_png"])})',
    ]
    if summary.get('cost_table'):
        lines += ['', '## What the student costs against the teacher', '', summary['cost_table'].rstrip()]
    return '\n'.join(lines) + '\n'


def stage(msg: str) -> None:
    """One line of the demo's progress, with the time."""
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)
