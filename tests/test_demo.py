"""The embedded demo: the digit-scenes data set, the demo's runs and report, tools/demo.py end to end (--quick)."""

import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import DATASETS
from PIL import Image

from gdkd_seg import demo
from gdkd_seg.datasets import (
    CLASSES,
    PALETTE,
    digit_scenes,
    generate_split,
    load_digit_scans,
    prepare_digit_scenes,
    split_scans,
)
from gdkd_seg.datasets.digit_scenes import _settings, read_meta

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SMALL = dict(num_train=6, num_val=4)


def _scenes(split, count, **settings):
    return list(generate_split(split, count, _settings(**settings)))


def test_scenes_are_deterministic_from_the_seed():
    first, again, other = _scenes('train', 3), _scenes('train', 3), _scenes('train', 3, seed=1)
    for (img, label, placed), (img2, label2, placed2) in zip(first, again):
        assert np.array_equal(img, img2) and np.array_equal(label, label2) and placed == placed2
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    # The val scenes do not depend on how many train scenes there are.
    assert all(
        np.array_equal(a[0], b[0]) for a, b in zip(_scenes('val', 2, num_train=5), _scenes('val', 2, num_train=50))
    )


def test_train_and_val_use_disjoint_scans():
    _, targets = load_digit_scans()
    split = split_scans(targets, 0.3, seed=0)
    assert not set(split['train']) & set(split['val'])
    assert len(split['train']) + len(split['val']) == len(targets) == 1797
    val_share = np.bincount(targets[split['val']]) / np.bincount(targets)
    assert np.allclose(val_share, 0.3, atol=0.01)  # stratified: every digit keeps the same share
    for name in ('train', 'val'):
        used = {d.scan for _, _, placed in _scenes(name, 20) for d in placed}
        assert used <= set(split[name]), name


def test_labels_are_the_ink_of_the_digits():
    scans, targets = load_digit_scans()
    for img, label, placed in _scenes('val', 8, num_clutter=(0, 0), noise_std=(0.0, 0.0), num_digits=(1, 1)):
        (digit,) = placed
        y, x, h, w = digit.box
        ink = cv2.resize(scans[digit.scan].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.3
        expected = np.zeros_like(label)
        expected[y : y + h, x : x + w][ink] = targets[digit.scan] + 1
        assert np.array_equal(label, expected)
        assert digit.digit == targets[digit.scan]
        # The labelled pixels are painted in the digit's colour; the anti-aliased rim is not labelled.
        off = np.abs(img.astype(int) - digit.colour).max(-1)
        assert off[label > 0].max() <= 1
        assert np.mean(off[label == 0] <= 1) < 0.01


def test_overlapping_digits_label_the_visible_ink():
    matched = total = 0
    for img, label, placed in _scenes('train', 10, num_clutter=(0, 0), noise_std=(0.0, 0.0), num_digits=(3, 3)):
        present = set(np.unique(label)) - {0}
        assert present <= {d.digit + 1 for d in placed}
        assert placed[-1].digit + 1 in present  # the last digit is on top
        for cls in present:
            ys, xs = np.nonzero(label == cls)
            own = [d for d in placed if d.digit + 1 == cls]
            off = np.min([np.abs(img[ys, xs].astype(int) - d.colour).max(1) for d in own], axis=0)
            # A pixel off its digit's colour can only be where digits overlap (under another one's rim).
            boxes_over = sum(
                (ys >= y) & (ys < y + h) & (xs >= x) & (xs < x + w) for y, x, h, w in (d.box for d in placed)
            )
            assert np.all((off <= 1) | (boxes_over >= 2)), cls
            matched, total = matched + np.sum(off <= 1), total + len(ys)
    assert matched / total > 0.9


def test_prepare_caches_and_regenerates_on_change(tmp_path, monkeypatch):
    root = str(tmp_path / 'scenes')
    assert prepare_digit_scenes(root, **SMALL) == (root, True)
    assert len(list((tmp_path / 'scenes' / 'img_dir' / 'train').iterdir())) == 6
    assert len(list((tmp_path / 'scenes' / 'ann_dir' / 'val').iterdir())) == 4
    stamp = osp.getmtime(osp.join(root, 'img_dir', 'train', '00000.png'))
    assert prepare_digit_scenes(root, **SMALL) == (root, False)
    assert osp.getmtime(osp.join(root, 'img_dir', 'train', '00000.png')) == stamp

    assert prepare_digit_scenes(root, num_train=3, num_val=4) == (root, True)
    assert len(list((tmp_path / 'scenes' / 'img_dir' / 'train').iterdir())) == 3
    monkeypatch.setattr(digit_scenes, 'GENERATOR_VERSION', digit_scenes.GENERATOR_VERSION + 1)
    assert prepare_digit_scenes(root, num_train=3, num_val=4) == (root, True)
    assert read_meta(root)['generator_version'] == digit_scenes.GENERATOR_VERSION
    assert not osp.exists(root + '.tmp')


def test_prepare_refuses_foreign_folders_and_unknown_settings(tmp_path):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not a digit-scenes folder'):
        prepare_digit_scenes(str(tmp_path / 'mine'), **SMALL)
    assert (tmp_path / 'mine' / 'notes.txt').exists()
    with pytest.raises(TypeError, match="Unknown digit-scene settings \\['num_scenes'\\]"):
        prepare_digit_scenes(str(tmp_path / 'x'), num_scenes=3)


def test_mmseg_loads_the_scenes_with_the_demo_config(tmp_path):
    root = str(tmp_path / 'scenes')
    prepare_digit_scenes(root, **SMALL)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'student_fcn_r18w4_digits.py'))
    dataset_cfg = cfg.val_dataloader.dataset
    dataset_cfg.data_root = root
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 4
    assert dataset.metainfo['classes'] == CLASSES and dataset.metainfo['palette'] == PALETTE
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 64, 64)
    labels = sample['data_samples'].gt_sem_seg.data
    _, stored, _ = _scenes('val', 1, **SMALL)[0]
    assert np.array_equal(labels[0].numpy(), stored)
    assert set(np.unique(stored)) - {0}  # digits present


def test_demo_methods_come_from_the_configs_and_share_one_student_and_teacher():
    methods = demo.demo_methods()
    assert [m.key for m in methods] == [
        'student',
        'KD',
        'DKD',
        'GDKD',
        'GDKD+DIST',
        'GDKD-live',
        'GDKD-w2=0',
        'TopKD',
        'GDKD+TSM',
        'BlockKD',
        'FKD',
        'KD-live',
        'DKD-live',
        'student-crops',
        'student-crops-GDKD',
    ]
    assert [m.key for m in methods if m.default] == ['student', 'KD', 'DKD', 'GDKD', 'GDKD+DIST', 'GDKD-live']
    cached = [m.key for m in methods if Config.fromfile(m.config).model.get('teacher_cache')]
    assert cached == ['KD', 'DKD', 'GDKD', 'GDKD+DIST', 'GDKD-w2=0']  # the live GDKD runs one seed
    assert [m.seeds for m in methods if m.key == 'GDKD-live'] == [1]
    student = Config.fromfile(methods[0].config).model
    assert not methods[0].distilled
    teacher = Config.fromfile(demo.TEACHER_CONFIG).model
    assert teacher.decode_head.type == 'ASPPHead'
    # The pretrained starts are the student alone with another first backbone (part 3 of docs/pretraining.md).
    starts = [m for m in methods if m.key.startswith('student-')]
    for method in starts:
        model = Config.fromfile(method.config).model
        assert not method.distilled and model.backbone.init_cfg.type == 'Pretrained'
        model.backbone.pop('init_cfg')
        assert model == student
    for method in methods[1:]:
        if method in starts:
            continue
        model = Config.fromfile(method.config).model
        assert model.type == 'SegDistiller' and method.distilled
        assert model.student == student
        assert Config.fromfile(model.teacher).model == teacher
        assert Config.fromfile(method.config).train_cfg == Config.fromfile(methods[0].config).train_cfg


def test_teacher_key_follows_config_overrides_and_data():
    meta = _settings()
    key = demo.teacher_key({}, meta)
    assert key == demo.teacher_key({}, dict(meta))
    assert key != demo.teacher_key(demo.schedule_options(demo.TEACHER_CONFIG, 10, 5), meta)
    assert key != demo.teacher_key({}, dict(meta, generator_version=meta['generator_version'] + 1))


def test_a_pretrained_start_keys_its_runs_by_the_backbone_file_and_must_exist(tmp_path):
    method = next(m for m in demo.demo_methods() if m.key == 'student-crops')
    backbone = tmp_path / 'backbone.pth'
    options = {'model.backbone.init_cfg.checkpoint': str(backbone)}
    with pytest.raises(FileNotFoundError, match='backbone.pth, which does not exist.*export_backbone'):
        demo.run_key(method.config, options, {})
    backbone.write_bytes(b'first export')
    key = demo.run_key(method.config, options, {})
    assert key == demo.run_key(method.config, options, {})
    backbone.write_bytes(b'second export')  # same path, new weights: a new run, not a stale reuse
    assert demo.run_key(method.config, options, {}) != key
    assert demo.pretrained_checkpoints(dict(pretrained='open-mmlab://resnet18_v1c', a=[dict(pretrained='x.pth')])) == [
        'x.pth'
    ]


def test_a_pretrained_start_from_a_backbone_of_another_width_stops_before_training(tmp_path):
    # MMEngine's Pretrained init loads non-strictly (a warning, then training from scratch); train() refuses.
    import torch
    from mmseg.registry import MODELS

    from gdkd_seg import runner
    from gdkd_seg.utils import CheckpointMismatchError

    root = str(tmp_path / 'scenes')
    prepare_digit_scenes(root, **SMALL)
    method = next(m for m in demo.demo_methods() if m.key == 'student-crops')
    backbone_cfg = dict(Config.fromfile(method.config).model.backbone, init_cfg=None)
    data = {f'{split}_dataloader.dataset.data_root': root for split in ('train', 'val', 'test')}
    options = dict(data, **demo.schedule_options(method.config, 1, 1))

    def start_from(backbone, name):
        path = str(tmp_path / name)
        torch.save({'state_dict': backbone}, path)
        opts = dict(options, **{'model.backbone.init_cfg.checkpoint': path})
        return runner.train(method.config, opts, work_dir=str(tmp_path / name[:-4]))

    wide = MODELS.build(dict(backbone_cfg, stem_channels=6, base_channels=6)).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r'(?s)wide\.pth does not fit the backbone of .*stem\.0\.weight'):
        start_from(wide, 'wide.pth')
    fitting = MODELS.build(backbone_cfg).state_dict()
    partial = {k: v for k, v in fitting.items() if not k.startswith('layer3.')}
    with pytest.raises(CheckpointMismatchError, match=r'(?s)missing in checkpoint .*layer3\.'):
        start_from(partial, 'partial.pth')
    # The right width trains, from exactly those weights; an extra head (an ImageNet checkpoint's) is allowed.
    fitting = {k: v + 1 if v.is_floating_point() else v for k, v in fitting.items()}
    trained = start_from(dict(fitting, **{'fc.weight': torch.zeros(10, 16)}), 'fitting.pth')
    assert trained.iter == 1
    stem = trained.model.backbone.stem[0].weight.detach()
    assert torch.allclose(stem, fitting['stem.0.weight'], atol=0.05)  # one SGD step from the loaded weights


def test_make_crops_backbones_writes_the_backbones_the_pretrained_starts_read():
    starts = [m for m in demo.demo_methods() if m.key.startswith('student-crops')]
    wanted = {p for m in starts for p in demo.pretrained_checkpoints(Config.fromfile(m.config).model)}
    plan = subprocess.run(
        ['make', '-n', '-B', 'crops-backbones'], cwd=demo.runs.REPO, capture_output=True, text=True, check=True
    ).stdout
    exports = [line.split() for line in plan.splitlines() if 'tools/export_backbone.py' in line]
    assert {words[3] for words in exports} == wanted and len(wanted) == 2
    # Each export is checked against the segmentation student the pretrained starts share.
    assert all(words[-1] == 'configs/demo/student_fcn_r18w4_digits.py' for words in exports)


def test_partitions_come_from_the_gdkd_student_or_else_the_plain_teacher(tmp_path):
    methods = demo.demo_methods()
    teacher = dict(checkpoint=str(tmp_path / 'teacher.pth'))
    gdkd = next(m for m in methods if m.key == 'GDKD')
    run_dir = tmp_path / 'GDKD' / 'seed0'
    run_dir.mkdir(parents=True)
    (run_dir / 'iter_1.pth').write_bytes(b'')
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_1.pth'))
    runs = [
        dict(method='student', seed=0, run_dir=str(tmp_path / 'student' / 'seed0')),
        dict(method='GDKD', seed=1, run_dir=str(tmp_path / 'GDKD' / 'seed1')),
        dict(method='GDKD', seed=0, run_dir=str(run_dir)),
    ]
    config, checkpoint, options = demo.partition_source(methods, 0, teacher, runs)
    assert (config, checkpoint) == (gdkd.config, str(run_dir / 'iter_1.pth'))
    assert options == {'model.teacher_checkpoint': teacher['checkpoint'], 'model.teacher_cache': None}
    # Without a GDKD run: the teacher's plain MMSeg config, which takes no teacher_checkpoint.
    without = [m for m in methods if m.key != 'GDKD']
    assert demo.partition_source(without, 0, teacher, runs[:1]) == (demo.TEACHER_CONFIG, teacher['checkpoint'], {})


def test_student_iters_sets_the_students_schedule_and_their_run_dirs(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location('demo_tool', osp.join(REPO, 'tools', 'demo.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    made = []
    monkeypatch.setattr(demo.Demo, 'run', lambda self: made.append(self))
    for extra in (
        [],
        ['--student-iters', '24000', '--val-every', '1000'],
        ['--teacher-iters', '64000', '--teacher-val-every', '2000'],
    ):
        tool.main(['--full', '--methods', 'student', '--work-dir', str(tmp_path)] + extra)
    full, longer, longer_teacher = made
    assert (full.schedule.val_every, longer.schedule.val_every) == (2000, 1000)
    bad_options = (['--val-every', '0'], ['--student-iters', '-5'], ['--val-every', 'abc'], ['--teacher-iters', '0'])
    for bad in bad_options:  # not silently ignored
        with pytest.raises(SystemExit):
            tool.main(['--full', '--work-dir', str(tmp_path)] + bad)
    assert len(made) == 3
    assert (full.schedule.teacher_iters, full.schedule.teacher_val_every) == (None, 750)  # the config's schedule
    assert (longer_teacher.schedule.teacher_iters, longer_teacher.schedule.teacher_val_every) == (64000, 2000)
    assert longer_teacher.student_iters() == 48000
    teacher_options = demo.schedule_options(demo.TEACHER_CONFIG, 64000, 2000)
    assert teacher_options['train_cfg.max_iters'] == teacher_options['param_scheduler.0.end'] == 64000
    assert teacher_options['train_cfg.val_interval'] == 2000
    assert [m.key for m in longer.methods] == ['student'] and longer.schedule.seeds == full.schedule.seeds
    assert (full.student_iters(), longer.student_iters()) == (48000, 24000)
    assert longer.run_dir(longer.methods[0], 1) == osp.join(str(tmp_path), '24000it', 'student', 'seed1')
    assert longer.schedule.teacher_iters == full.schedule.teacher_iters  # the same teacher
    options = demo.schedule_options(longer.methods[0].config, longer.schedule.student_iters, 500)
    assert options['train_cfg.max_iters'] == options['param_scheduler.0.end'] == 24000


def test_cfg_options_reach_the_distilled_runs_only_and_get_their_own_run_dirs(tmp_path):
    methods = demo.demo_methods()
    student, gdkd = methods[0], next(m for m in methods if m.key == 'GDKD')
    overrides = {'model.distill_losses.decode.loss.topk': 5}

    plain = demo.Demo(str(tmp_path), str(tmp_path / 'data'), demo.FULL, [student, gdkd])
    swept = demo.Demo(str(tmp_path), str(tmp_path / 'data'), demo.FULL, [student, gdkd], overrides=overrides)
    assert swept.run_dir(student, 0) == plain.run_dir(student, 0)  # the student alone is shared
    assert swept.run_dir(gdkd, 0) != plain.run_dir(gdkd, 0)
    assert osp.basename(osp.dirname(swept.run_dir(gdkd, 0))).startswith('GDKD-')
    assert demo.run_key(gdkd.config, overrides, {}) != demo.run_key(gdkd.config, {}, {})

    # The options go to tools/train.py of the distilled runs; the results name them.
    calls = []

    def fake_train(config, run_dir, options, key):
        calls.append((config, options, key))
        os.makedirs(run_dir, exist_ok=True)
        open(osp.join(run_dir, 'iter_1.pth'), 'wb').close()
        with open(osp.join(run_dir, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(run_dir, 'iter_1.pth'))
        mIoU = 20.0 if 'model.distill_losses.decode.loss.topk' in options else 10.0
        with open(osp.join(run_dir, 'timeline.json'), 'w') as f:
            json.dump([dict(iter=1, train_seconds=1.0, mIoU=mIoU - 5), dict(iter=2, train_seconds=2.0, mIoU=mIoU)], f)
        return osp.join(run_dir, 'iter_1.pth'), 1.0

    swept.train = fake_train
    swept.teacher_cache = lambda teacher, data_meta: (str(tmp_path / 'cache'), 3.0)  # GDKD runs from the cache
    swept.schedule = swept.schedule._replace(seeds=(0,))
    runs = swept.students(dict(checkpoint='teacher.pth'), {})
    assert [r['run_dir'] for r in runs] == [swept.run_dir(student, 0), swept.run_dir(gdkd, 0)]
    assert 'model.distill_losses.decode.loss.topk' not in calls[0][1]
    assert calls[1][1]['model.distill_losses.decode.loss.topk'] == 5
    assert calls[1][1]['model.teacher_cache'] == str(tmp_path / 'cache')
    assert calls[1][2] == demo.run_key(gdkd.config, calls[1][1], {})  # a run resumes only its own config and data
    assert [r['mIoU'] for r in runs] == [10.0, 20.0]  # the last point of each run's curve
    timeline = [dict(iter=i, train_seconds=float(i), mIoU=v) for i, v in zip((1, 2, 3, 4), (20.0, 25.0, 28.0, 30.0))]
    summary = dict(
        runs=runs,
        overrides=overrides,
        teacher=dict(iters=2, mIoU=30.0, reused=True, timeline=timeline),
        teacher_config='teacher',
        data=_settings(),
        command='python tools/demo.py',
        total_seconds=1.0,
        seeds=[0],
        val_every=1,
        cache_seconds=3.0,
        curves_png='results_curves.png',
        student_iters=2,
        machine=dict(torch_threads=1, cpu_count=2),
    )
    table = demo.results_markdown(summary, [student, gdkd])
    assert '`model.distill_losses.decode.loss.topk=5`' in table
    header, rows = _table_rows(table)
    assert [row[0] for row in rows] == [student.label, gdkd.label + ' + overrides']
    col = {name: i for i, name in enumerate(header)}
    assert rows[1][col['gain over student']] == '+10.00' and rows[1][col['gap closed']] == '50%'
    assert 'Teacher - student: 20.00 mIoU' in table
    assert 'over its last quarter a trend of +2.00 (max - min 2.00)' in table
    assert 'the mean of its seeds has a trend of +0.00' in table and '(|trend| < 0.5): yes' in table
    assert '![val mIoU against training time](results_curves.png)' in table


def _table_rows(text):
    """The header and rows of the report's first table (the results; the cost table follows under its heading)."""
    results = text.split('\n## ')[0]
    rows = [line for line in results.splitlines() if line.startswith('|') and not line.startswith('|---')]
    header, body = rows[0], rows[1:]
    return [c.strip() for c in header.strip('|').split('|')], [
        [c.strip() for c in r.strip('|').split('|')] for r in body
    ]


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys):
    work, data = tmp_path / 'work', tmp_path / 'data'
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'demo.py'),
            '--quick',
            '--work-dir',
            str(work),
            '--data-root',
            str(data),
        ],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for n in range(1, 7):
        assert f'] {n}/6 ' in proc.stdout
    assert 'eta:' in proc.stdout  # MMEngine's progress lines reach the console

    text = (work / 'results.md').read_text()
    header, rows = _table_rows(text)
    default_methods = [m for m in demo.demo_methods() if m.default]
    assert [r[0] for r in rows] == [m.label for m in default_methods]
    col = {name: i for i, name in enumerate(header)}
    for row, method in zip(rows, default_methods):
        mean, std = re.fullmatch(r'(\d+\.\d\d) ± (\d+\.\d\d)', row[col['mIoU (mean ± std)']]).groups()
        per_seed = [float(v) for v in row[col['per seed']].split(' / ')]
        assert len(per_seed) == (method.seeds or len(demo.QUICK.seeds))
        for value in [float(mean), *per_seed]:
            assert 0.0 <= value <= 100.0
        assert abs(float(mean) - np.mean(per_seed)) < 0.01
    teacher_miou = float(re.search(r'Teacher .*val mIoU (\d+\.\d\d)', text).group(1))
    assert 0.0 <= teacher_miou <= 100.0
    summary = json.loads((work / 'results.json').read_text())
    assert len(summary['runs']) == sum(m.seeds or len(demo.QUICK.seeds) for m in default_methods)
    for run in summary['runs']:  # a curve per run: a point every val_every iterations, the clock running
        assert [p['iter'] for p in run['timeline']] == list(range(20, 61, 20))
        seconds = [p['train_seconds'] for p in run['timeline']]
        assert 0 < seconds[0] < seconds[1] < seconds[2] and run['mIoU'] == run['timeline'][-1]['mIoU']
    assert (work / 'results_curves.png').stat().st_size > 10_000
    cost = re.findall(
        r'^\| (teacher|student) \| [^|]+ \| random \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$', text, re.M
    )
    assert [row[0] for row in cost] == ['teacher', 'student']
    (_, t_params, t_flops, *_), (_, s_params, s_flops, *_) = cost
    assert float(t_params) > float(s_params) > 0 and float(t_flops) > float(s_flops) > 0
    assert glob.glob(str(work / '60it' / 'GDKD' / 'seed0' / '*' / 'vis_data' / 'events.out.tfevents.*'))  # TensorBoard

    # A second run reuses the teacher and the student runs finished with the same config and data.
    second = demo.Demo(str(work), str(data), demo.QUICK, default_methods)
    teacher = second.teacher(read_meta(str(data)))
    assert teacher['reused'] and teacher['checkpoint'] == summary['teacher']['checkpoint']
    second.train = None  # any training now would fail
    assert second.students(teacher, read_meta(str(data))) == summary['runs']

    # A run killed after 40 of its 60 iterations continues from its checkpoint of iteration 40, exactly.
    run_dir = work / '60it' / 'student' / 'seed0'
    assert sorted(p.name for p in run_dir.glob('iter_*.pth')) == ['iter_40.pth', 'iter_60.pth']  # the last two
    (run_dir / 'result.json').unlink()
    (run_dir / 'iter_60.pth').unlink()
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_40.pth'))
    student = next(m for m in default_methods if m.key == 'student')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the demo's runs trained (--jobs 2: one thread each)
    try:
        (resumed,) = demo.Demo(str(work), str(data), demo.QUICK._replace(seeds=(0,)), [student]).students(
            teacher, read_meta(str(data))
        )
    finally:
        torch.set_num_threads(threads)
    assert f'continuing the interrupted run from {run_dir / "iter_40.pth"}' in capsys.readouterr().out
    original = next(r for r in summary['runs'] if r['method'] == 'student' and r['seed'] == 0)
    assert resumed['timeline'][:2] == original['timeline'][:2]  # kept as they were, clock included
    assert resumed['timeline'][2]['train_seconds'] > original['timeline'][1]['train_seconds']
    assert [p['mIoU'] for p in resumed['timeline']] == [p['mIoU'] for p in original['timeline']]
    assert (run_dir / 'iter_60.pth').is_file()


def test_a_run_dir_resumes_only_an_interrupted_run_of_the_same_key(tmp_path):
    run_dir = tmp_path / 'run'
    assert not demo.prepare_run_dir(str(run_dir), 'aaa')  # a new run
    (run_dir / 'iter_20.pth').write_bytes(b'weights')
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_20.pth'))
    assert demo.prepare_run_dir(str(run_dir), 'aaa')  # interrupted: continue
    assert demo.last_checkpoint(str(run_dir)) == str(run_dir / 'iter_20.pth')
    # Another config or data: start afresh, and never resume the old run's checkpoint later either.
    assert not demo.prepare_run_dir(str(run_dir), 'bbb')
    assert demo.last_checkpoint(str(run_dir)) is None
    assert not demo.prepare_run_dir(str(run_dir), 'bbb')
    assert (run_dir / 'run_key').read_text() == 'bbb'


def test_resolution_ceiling_is_exact_for_uniform_labels_and_lower_for_finer_ones(tmp_path):
    rng = np.random.default_rng(0)
    folders = {name: tmp_path / name for name in ('uniform', 'blocky', 'noisy')}
    for folder in folders.values():
        folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32), i, np.uint8)).save(folders['uniform'] / f'{i}.png')
        cells = rng.integers(0, 11, size=(4, 4), dtype=np.uint8)  # one class per 8x8 cell
        Image.fromarray(np.kron(cells, np.ones((8, 8), np.uint8))).save(folders['blocky'] / f'{i}.png')
        Image.fromarray(rng.integers(0, 11, size=(32, 32), dtype=np.uint8)).save(folders['noisy'] / f'{i}.png')

    def ceiling(folder):
        out = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools', 'resolution_ceiling.py'), str(folder)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(out.rsplit(' ', 1)[1])

    assert ceiling(folders['uniform']) == 100.0
    assert 90.0 < ceiling(folders['blocky']) < 100.0  # corners of differing cells blur
    assert ceiling(folders['noisy']) < 30.0
