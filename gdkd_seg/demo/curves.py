"""Time-to-accuracy curves: val mIoU against training wall-clock, per method over seeds, and what they say.

A run's curve is its ``timeline.json`` (``ValTimelineHook``): a point per validation with the iteration, the
training seconds so far (data loading included, validation excluded) and the metrics. Everything here is a
pure function of those points, so the report can be rebuilt from the run folders and tested on made-up
curves.
"""

import statistics
from typing import Dict, List, NamedTuple, Optional, Sequence

PLATEAU_FRACTION = 0.25  # the last quarter of a schedule
PLATEAU_TOLERANCE = 0.5  # mIoU points a plateau may still rise over that quarter (by its trend)


def value_at(timeline: Sequence[dict], seconds: float, key: str = 'mIoU') -> Optional[float]:
    """The curve's value after ``seconds`` of training, linear between validations; after its last point the
    run's final value (its training is over, its model stays), before its first validation None (nothing
    measured yet)."""
    if not timeline or seconds < timeline[0]['train_seconds']:
        return None
    if seconds >= timeline[-1]['train_seconds']:
        return timeline[-1][key]
    for before, after in zip(timeline, timeline[1:]):
        if before['train_seconds'] <= seconds <= after['train_seconds']:
            span = after['train_seconds'] - before['train_seconds']
            share = (seconds - before['train_seconds']) / span if span > 0 else 1.0
            return before[key] + share * (after[key] - before[key])
    return timeline[-1][key]


def _tail(timeline: Sequence[dict], fraction: float) -> List[dict]:
    """The points of the last ``fraction`` of the schedule's iterations, the point at its start included."""
    last = timeline[-1]['iter']
    return [p for p in timeline if p['iter'] >= (1 - fraction) * last]


def plateau_change(timeline: Sequence[dict], fraction: float = PLATEAU_FRACTION, key: str = 'mIoU') -> float:
    """How far val mIoU moves (max - min) over the last ``fraction`` of the schedule: trend and noise."""
    tail = [p[key] for p in _tail(timeline, fraction)]
    return max(tail) - min(tail)


def plateau_trend(timeline: Sequence[dict], fraction: float = PLATEAU_FRACTION, key: str = 'mIoU') -> float:
    """How much val mIoU rises over the last ``fraction`` of the schedule by its trend: the least-squares line
    through those points, from its first iteration to its last. Unlike :func:`plateau_change` it does not count
    the validation noise, which alone moves a converged run's curve by about a point here."""
    tail = _tail(timeline, fraction)
    if len(tail) < 2:
        return 0.0
    slope = statistics.linear_regression([p['iter'] for p in tail], [p[key] for p in tail]).slope
    return slope * (tail[-1]['iter'] - tail[0]['iter'])


class Stat(NamedTuple):
    mean: float
    std: float  # sample standard deviation over seeds (0 for one seed)
    values: tuple


def stat(values: Sequence[float]) -> Stat:
    values = tuple(values)
    return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, values)


def final(runs: Sequence[Sequence[dict]], key: str = 'mIoU') -> Stat:
    """The last validation of every seed's run."""
    return stat(run[-1][key] for run in runs)


def at_seconds(runs: Sequence[Sequence[dict]], seconds: float, key: str = 'mIoU') -> Optional[Stat]:
    """Every seed's value after ``seconds`` of training; None when a seed has not validated yet by then."""
    values = [value_at(run, seconds, key) for run in runs]
    return None if any(v is None for v in values) else stat(values)


def mean_curve(runs: Sequence[Sequence[dict]], key: str = 'mIoU') -> List[dict]:
    """Mean and std over seeds at each validation (runs validate at the same iterations): seconds, value."""
    points = min(len(run) for run in runs)
    out = []
    for i in range(points):
        value = stat(run[i][key] for run in runs)
        out.append(
            dict(
                iter=runs[0][i]['iter'],
                seconds=statistics.fmean(run[i]['train_seconds'] for run in runs),
                mean=value.mean,
                std=value.std,
            )
        )
    return out


def ahead_at_every_point(
    method: Sequence[Sequence[dict]], baseline: Sequence[Sequence[dict]], deviations: float = 2.0
) -> dict:
    """Compare ``method`` with ``baseline`` at equal wall-clock: at each of the baseline's validation times
    that both reach, the method is *ahead* when its mean exceeds the baseline's by more than ``deviations``
    times the larger of the two seed standard deviations. Returns the counts and the smallest margin."""
    times = [p['seconds'] for p in mean_curve(baseline)]
    compared, ahead, margins = 0, 0, []
    for seconds in times:
        m, b = at_seconds(method, seconds), at_seconds(baseline, seconds)
        if m is None or b is None:
            continue
        compared += 1
        margin = m.mean - b.mean
        margins.append(margin)
        ahead += margin > deviations * max(m.std, b.std)
    return dict(compared=compared, ahead=ahead, min_margin=min(margins) if margins else None)


def gap_closed(value: float, student: float, teacher: float) -> float:
    """The share of the teacher-student gap a method closes: 0 at the student alone, 1 at the teacher."""
    if teacher <= student:
        raise ValueError(f'the teacher ({teacher:.2f}) is not above the student ({student:.2f}): no gap to close')
    return (value - student) / (teacher - student)


def summary_rows(curves: Dict[str, List[List[dict]]], baseline: str, teacher_miou: float) -> List[dict]:
    """One row per method: its final mIoU, its mIoU at the baseline's training time (equal wall-clock), the
    share of the teacher-student gap it closes at the end (None when the teacher is not above the student), the
    comparison at every point, its time per run."""
    base = curves[baseline]
    base_final = final(base)
    base_seconds = statistics.fmean(run[-1]['train_seconds'] for run in base)
    has_gap = teacher_miou > base_final.mean  # else there is nothing to close (a teacher no better than the student)
    rows = []
    for label, runs in curves.items():
        end = final(runs)
        rows.append(
            dict(
                label=label,
                seeds=len(runs),
                iters=runs[0][-1]['iter'],
                final=end,
                seconds=statistics.fmean(run[-1]['train_seconds'] for run in runs),
                at_baseline_time=at_seconds(runs, base_seconds),
                gap_closed=gap_closed(end.mean, base_final.mean, teacher_miou) if has_gap else None,
                versus_baseline=None if label == baseline else ahead_at_every_point(runs, base),
            )
        )
    return rows


def plot_curves(
    curves: Dict[str, List[List[dict]]], teacher_miou: float, path: str, title: str = 'val mIoU against training time'
) -> str:
    """mIoU against training seconds: the mean over seeds with a band of one standard deviation, and the
    teacher as a dashed line. Writes a PNG to ``path``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for label, runs in curves.items():
        points = mean_curve(runs)
        xs = [p['seconds'] for p in points]
        ys = [p['mean'] for p in points]
        (drawn,) = ax.plot(xs, ys, marker='o', markersize=2.5, linewidth=1.3, label=f'{label} ({len(runs)} seeds)')
        if len(runs) > 1:
            low = [p['mean'] - p['std'] for p in points]
            high = [p['mean'] + p['std'] for p in points]
            ax.fill_between(xs, low, high, color=drawn.get_color(), alpha=0.18, linewidth=0)
    ax.axhline(teacher_miou, color='black', linestyle='--', linewidth=1, label=f'teacher ({teacher_miou:.2f})')
    ax.set_xlabel('training time per run (s; data loading included, validation excluded)')
    ax.set_ylabel('val mIoU (mean ± std over seeds)')
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
