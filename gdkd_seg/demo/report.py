"""The demo's report: ``results.md`` (the table users read) from the run summary (``results.json``)."""

import statistics
import time
from typing import Dict, List


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 60}m{seconds % 60:02d}s' if seconds >= 60 else f'{seconds}s'


def method_label(method, overrides) -> str:
    return method.label + (' + overrides' if overrides and method.distilled else '')


def results_markdown(summary: dict, methods: List) -> str:
    """The results table: mIoU mean ± sample std over seeds, per-seed values, gain over the baseline (the
    first method), wall-clock per run."""
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
        *(
            [f'Overrides of every distilled method: {", ".join(f"`{k}={v}`" for k, v in overrides.items())}.', '']
            if overrides
            else []
        ),
        f'Teacher ({summary["teacher_config"]}, {teacher["iters"]} iterations): mIoU {teacher["mIoU"]:.2f}'
        + (' (reused)' if teacher.get('reused') else f', trained in {fmt_duration(teacher["seconds"])}')
        + '.',
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
        lines.append(
            f'| {method_label(method, overrides)} | {mean:.2f} ± {std:.2f} | '
            f'{" / ".join(f"{v:.2f}" for v in values)} | {gain} | {fmt_duration(seconds)} |'
        )
    if summary.get('cost_table'):
        lines += ['', '## What the student costs against the teacher', '', summary['cost_table'].rstrip()]
    return '\n'.join(lines) + '\n'


def stage(msg: str) -> None:
    """One line of the demo's progress, with the time."""
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)
