"""Time-to-accuracy curves: the timeline hook's logging (kill and resume included) and the curve maths."""

import json

import pytest
from helpers import runner_cfg, tiny_segmentor, write_seg_folder

from gdkd_seg.demo import curves


def line(per_iter_seconds, values, every=100):
    return [
        dict(iter=every * (i + 1), train_seconds=every * (i + 1) * per_iter_seconds, mIoU=v)
        for i, v in enumerate(values)
    ]


def test_value_at_interpolates_between_validations_and_holds_the_final_model():
    run = line(0.1, [10.0, 30.0, 40.0])  # points at 10 s, 20 s, 30 s
    assert curves.value_at(run, 15.0) == pytest.approx(20.0)
    assert curves.value_at(run, 20.0) == pytest.approx(30.0)
    assert curves.value_at(run, 99.0) == 40.0  # training over: the final model
    assert curves.value_at(run, 5.0) is None  # nothing measured yet


def test_plateau_change_looks_at_the_last_quarter_only():
    run = line(0.1, [10, 20, 30, 40, 50, 60, 70, 71.0])  # last quarter: iters 600..800
    assert curves.plateau_change(run) == pytest.approx(11.0)
    flat = line(0.1, [10, 20, 30, 40, 50, 60, 60.2, 60.4])
    assert curves.plateau_change(flat) == pytest.approx(0.4) and curves.plateau_change(flat) < curves.PLATEAU_TOLERANCE


def test_the_plateau_of_the_seeds_mean_averages_out_their_noise():
    up = line(0.1, [10, 20, 30, 40, 50, 60, 59.7, 60.3])
    down = line(0.1, [10, 20, 30, 40, 50, 60, 60.3, 59.7])
    assert curves.plateau_change(up) == pytest.approx(0.6) == curves.plateau_change(down)
    assert curves.plateau_change(curves.mean_curve([up, down]), key='mean') == pytest.approx(0.0)


def test_the_plateau_trend_is_the_least_squares_rise_and_ignores_noise():
    rising = line(0.1, [10, 20, 30, 40, 50, 60, 61, 62])  # last quarter 600..800: +1 per point
    assert curves.plateau_trend(rising) == pytest.approx(2.0)
    noisy = line(0.1, [10, 20, 30, 40, 50, 60, 61, 60])  # a spike, no trend
    assert curves.plateau_trend(noisy) == pytest.approx(0.0) and curves.plateau_change(noisy) == pytest.approx(1.0)


def test_equal_wall_clock_compares_a_slower_method_at_the_baselines_time():
    student = [line(0.1, [20, 40, 50, 52]), line(0.1, [22, 42, 52, 54])]  # ends at 40 s
    slow = [line(0.2, [30, 50, 60, 62]), line(0.2, [30, 50, 60, 62])]  # 40 s buys it two validations
    rows = {r['label']: r for r in curves.summary_rows(dict(student=student, slow=slow), 'student', teacher_miou=73.0)}
    assert rows['slow']['final'].mean == 62.0
    assert rows['slow']['at_baseline_time'].mean == pytest.approx(50.0)  # behind the student's 53 at equal time
    assert rows['slow']['gap_closed'] == pytest.approx((62 - 53) / (73 - 53))
    versus = rows['slow']['versus_baseline']
    # at 10 s the slow method has not validated; at 20, 30, 40 s it has 30, 40, 50 against the student's 41, 51, 53
    assert versus == dict(compared=3, ahead=0, min_margin=pytest.approx(-11.0))
    assert rows['student']['versus_baseline'] is None and rows['student']['gap_closed'] == 0


def test_ahead_needs_more_than_two_seed_deviations():
    base = [line(0.1, [50, 50]), line(0.1, [52, 52])]  # std 1.41
    near = [line(0.1, [52.5, 52.5]), line(0.1, [54.5, 54.5])]  # +2.5 < 2 * 1.41
    far = [line(0.1, [54, 54]), line(0.1, [56, 56])]  # +4 > 2.83
    assert curves.ahead_at_every_point(near, base)['ahead'] == 0
    assert curves.ahead_at_every_point(far, base) == dict(compared=2, ahead=2, min_margin=pytest.approx(4.0))


def test_gap_closed_refuses_a_teacher_below_the_student_and_the_table_says_no_gap():
    with pytest.raises(ValueError, match='teacher .* not above the student'):
        curves.gap_closed(50.0, 60.0, 58.0)
    runs = dict(student=[line(0.1, [50, 60])], kd=[line(0.1, [50, 61])])
    assert [r['gap_closed'] for r in curves.summary_rows(runs, 'student', teacher_miou=58.0)] == [None, None]


def test_the_timeline_survives_a_kill_and_a_resume_continues_its_clock(tmp_path):
    from mmengine.runner import Runner

    root = write_seg_folder(str(tmp_path / 'data'), n_train=2, n_val=1)

    def cfg(max_iters, resume):
        c = runner_cfg(tmp_path / 'work', root, tiny_segmentor(), max_iters=max_iters)
        c.train_cfg.val_interval = 2
        c.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
        c.custom_hooks = [dict(type='ValTimelineHook')]
        c.resume = resume
        return c

    Runner.from_cfg(cfg(4, False)).train()  # a run that stops at 4 of 8 iterations, as a killed one would
    timeline_file = tmp_path / 'work' / 'timeline.json'
    first = json.loads(timeline_file.read_text())
    assert [p['iter'] for p in first] == [2, 4]
    Runner.from_cfg(cfg(8, True)).train()
    timeline = json.loads(timeline_file.read_text())
    assert [p['iter'] for p in timeline] == [2, 4, 6, 8]
    assert timeline[:2] == first  # the curve so far is kept
    seconds = [p['train_seconds'] for p in timeline]
    assert all(a < b for a, b in zip(seconds, seconds[1:]))  # the clock continues from the checkpoint's time
    assert all(0 <= p['mIoU'] <= 100 for p in timeline)
