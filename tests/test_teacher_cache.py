"""Offline teacher logits: the cache build, its keys and errors, the transforms that carry the logits through
the augmentation, and training from the cache."""

import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import runner_cfg, save_random_segmentor, tiny_segmentor, write_seg_folder
from mmengine.dataset import Compose, pseudo_collate
from mmseg.registry import MODELS
from PIL import Image

from gdkd_seg import runner as gdkd_runner
from gdkd_seg.cache_builder import build_teacher_cache
from gdkd_seg.config import load_config
from gdkd_seg.datasets.teacher_cache import TeacherCacheError, read_manifest
from gdkd_seg.datasets.teacher_logits import LoadTeacherLogits, TeacherLogits, cache_file
from gdkd_seg.models.teacher import FrozenTeacher

LOGITS = 'decode_head.conv_seg'


@pytest.fixture
def setup(tmp_path):
    """Toy data, a random teacher checkpoint and a GDKD distiller config writer."""
    root = write_seg_folder(str(tmp_path / 'data'), n_train=5, n_val=2)
    teacher = save_random_segmentor(tmp_path / 'teacher.pth')

    def config(name='gdkd', cache=None, pipeline=None, max_iters=2, losses=None, checkpoint=teacher):
        model = dict(
            type='SegDistiller',
            student=tiny_segmentor(3, width=8, aux=True),
            teacher=tiny_segmentor(3, width=16, aux=True),
            teacher_checkpoint=str(checkpoint),
            distill_losses=losses
            or dict(
                decode=dict(student=LOGITS, teacher=LOGITS, loss=dict(type='GDKDLoss', topk=1)),
                aux=dict(
                    student='auxiliary_head.conv_seg',
                    teacher='auxiliary_head.conv_seg',
                    loss=dict(type='GDKDLoss', topk=1, loss_weight=0.4),
                ),
            ),
        )
        if cache:
            model['teacher_cache'] = str(cache)
        cfg = runner_cfg(tmp_path / f'work_{name}', root, model, max_iters=max_iters)
        if pipeline is not None:
            cfg.train_dataloader.dataset.pipeline = pipeline
        cfg.custom_imports = dict(imports=['gdkd_seg'])
        path = str(tmp_path / f'{name}.py')
        cfg.dump(path)
        return path

    return root, teacher, config


def test_cache_build_stores_fp16_logits_for_every_image_and_a_keyed_manifest(tmp_path, setup, capsys):
    root, teacher, config = setup
    out = build_teacher_cache(config(), str(tmp_path / 'cache'))
    printed = capsys.readouterr().out
    assert 'about 0.00 GiB on disk' in printed and 'logits 8x8, stride 8' in printed
    manifest = read_manifest(out)
    assert manifest['complete'] and manifest['num_images'] == 5 and manifest['stride'] == 8
    assert manifest['outputs'] == {LOGITS: 3, 'auxiliary_head.conv_seg': 3}
    assert len(manifest['teacher']['checkpoint_sha256']) == 64
    files = [
        cache_file(out, osp.join(root, 'img_dir', 'train', f'{i:03d}.png'), osp.join(root, 'img_dir', 'train'))
        for i in range(5)
    ]
    with np.load(files[0]) as cached:
        assert cached[LOGITS].dtype == np.float16 and cached[LOGITS].shape == (3, 8, 8)
        assert tuple(cached['base_shape']) == (64, 64)
    assert manifest['bytes'] == sum(osp.getsize(f) for f in files)


def test_without_augmentation_the_cached_logits_are_the_live_ones(tmp_path, setup):
    _, teacher_ckpt, config = setup
    path = config(cache=tmp_path / 'cache')
    build_teacher_cache(path)
    cfg = load_config(path)
    gdkd_runner.use_teacher_cache(cfg, path)
    dataset_cfg = cfg.train_dataloader.dataset
    assert [t['type'] for t in dataset_cfg.pipeline] == [
        'LoadImageFromFile',
        'LoadTeacherLogits',
        'LoadAnnotations',
        'PackSegInputsWithTeacherLogits',
    ]
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.teacher.model is None  # no teacher network is built
    live = FrozenTeacher(MODELS.build(tiny_segmentor(3, width=16, aux=True)), str(teacher_ckpt))
    live.capture([LOGITS, 'auxiliary_head.conv_seg'])
    live.load()
    from mmseg.registry import DATASETS

    dataset = DATASETS.build(dataset_cfg)
    batch = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(4)]), True)
    cached = model.teacher.outputs(batch['inputs'], batch['data_samples'])
    expected = live(batch['inputs'])
    for name in (LOGITS, 'auxiliary_head.conv_seg'):
        assert cached[name].shape == expected[name].shape == (4, 3, 8, 8)
        # float16 precision: within half a float16 step (2^-11 relative) of the live logits
        assert ((cached[name] - expected[name]).abs() <= 2**-11 * expected[name].abs() + 1e-6).all()


def test_training_from_the_cache_never_builds_the_teacher(tmp_path, setup):
    _, _, config = setup
    path = config(cache=tmp_path / 'cache')
    build_teacher_cache(path)
    trained = gdkd_runner.train(path)
    assert trained.model.teacher.model is None
    scalars = [
        json.loads(line)
        for line in open(
            next(iter(__import__('glob').glob(str(tmp_path / 'work_gdkd' / '*' / 'vis_data' / 'scalars.json'))))
        )
    ]
    logged = [s for s in scalars if 'distill.decode.loss_gdkd' in s]
    assert logged and all(
        np.isfinite(s['distill.decode.loss_gdkd']) and s['distill.decode.loss_gdkd'] > 0 for s in logged
    )


def test_missing_incomplete_and_stale_caches_are_clear_errors(tmp_path, setup):
    _, teacher, config = setup
    path = config(cache=tmp_path / 'cache')
    with pytest.raises(TeacherCacheError, match=r'No teacher cache at .*cache.*python tools/cache_teacher\.py '):
        gdkd_runner.train(path)
    build_teacher_cache(path)
    manifest_file = tmp_path / 'cache' / 'cache.json'
    manifest = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps(dict(manifest, complete=False)))
    with pytest.raises(TeacherCacheError, match='incomplete .*continues where it stopped'):
        gdkd_runner.train(path)
    manifest_file.write_text(json.dumps(manifest))

    save_random_segmentor(teacher, seed=1)  # another teacher, saved under the same name
    with pytest.raises(TeacherCacheError, match=r"built for another teacher \(its \['checkpoint_sha256'\] differ"):
        gdkd_runner.train(path)
    with pytest.raises(TeacherCacheError, match='holds the cache of another teacher'):
        build_teacher_cache(path)


@pytest.mark.slow
def test_a_damaged_cache_file_is_named_and_rebuilt(tmp_path, setup, capsys):
    """A truncated file (an interrupted copy) stops training with its name and the command; the build then
    redoes that file, keeps the others and is complete again."""
    root, _, config = setup
    path = config(cache=tmp_path / 'cache', max_iters=3)  # 6 samples: every one of the 5 images is read
    build_teacher_cache(path)
    damaged = cache_file(
        str(tmp_path / 'cache'), osp.join(root, 'img_dir', 'train', '002.png'), osp.join(root, 'img_dir', 'train')
    )
    whole = open(damaged, 'rb').read()
    others = {
        f: os.path.getmtime(f)
        for f in glob.glob(str(tmp_path / 'cache' / 'logits' / '**' / '*.npz'), recursive=True)
        if f != damaged
    }
    with open(damaged, 'wb') as f:
        f.write(whole[: len(whole) // 2])
    with pytest.raises(
        TeacherCacheError, match=r'002\.npz are damaged .*python tools/cache_teacher\.py .*rebuilds damaged'
    ):
        gdkd_runner.train(path)
    capsys.readouterr()
    build_teacher_cache(path)
    assert '4 already cached' in capsys.readouterr().out
    assert open(damaged, 'rb').read() == whole  # the same teacher on the same image: the same logits
    assert all(os.path.getmtime(f) == t for f, t in others.items())
    assert read_manifest(str(tmp_path / 'cache'))['complete']
    gdkd_runner.train(path)


@pytest.mark.slow
def test_the_same_teacher_moved_to_another_path_keeps_its_cache(tmp_path, setup, capsys):
    _, teacher, config = setup
    build_teacher_cache(config(cache=tmp_path / 'cache'))
    moved = tmp_path / 'elsewhere' / 'teacher_copy.pth'
    moved.parent.mkdir()
    shutil.copy(teacher, moved)
    path = config('moved', cache=tmp_path / 'cache', checkpoint=moved)
    capsys.readouterr()
    build_teacher_cache(path)  # keyed by content: nothing to redo, no refusal
    assert '5 already cached' in capsys.readouterr().out
    gdkd_runner.train(path)


def test_the_cache_refuses_feature_losses_other_scales_and_unknown_transforms(tmp_path, setup):
    root, _, config = setup
    features = dict(
        layer4=dict(
            student='backbone.layer4',
            teacher='backbone.layer4',
            connector=dict(type='FeatureProjector', in_channels=64, out_channels=128),
            loss=dict(type='FeatureKDLoss'),
        )
    )
    with pytest.raises(TeacherCacheError, match=r"teacher features \['backbone\.layer4'\]: feature-level methods"):
        build_teacher_cache(config('features', losses=features))
    path = config(cache=tmp_path / 'cache')
    build_teacher_cache(path)
    resized = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(96, 96), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='PackSegInputs'),
    ]
    with pytest.raises(TeacherCacheError, match=r'base scale None, the train pipeline resizes around \(96, 96\)'):
        gdkd_runner.train(config('resized', cache=tmp_path / 'cache', pipeline=resized))
    rotated = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomRotate', prob=1.0, degree=20),
        dict(type='PackSegInputs'),
    ]
    with pytest.raises(TeacherCacheError, match=r"not \['RandomRotate'\]"):
        gdkd_runner.train(config('rotated', cache=tmp_path / 'cache', pipeline=rotated))


def test_an_interrupted_build_continues_where_it_stopped(tmp_path, setup, monkeypatch):
    _, _, config = setup
    path = config()
    calls = {'n': 0}
    original = FrozenTeacher.__call__

    def dies_at_the_fourth_image(self, inputs):
        calls['n'] += 1
        if calls['n'] == 4:
            raise KeyboardInterrupt
        return original(self, inputs)

    monkeypatch.setattr(FrozenTeacher, '__call__', dies_at_the_fourth_image)
    with pytest.raises(KeyboardInterrupt):
        build_teacher_cache(path, str(tmp_path / 'cache'))
    first = sorted(os.listdir(tmp_path / 'cache' / 'logits'))
    assert len(first) == 3 and not read_manifest(str(tmp_path / 'cache'))['complete']
    stamps = {f: os.stat(tmp_path / 'cache' / 'logits' / f).st_mtime_ns for f in first}
    monkeypatch.setattr(FrozenTeacher, '__call__', original)
    calls['n'] = 0
    build_teacher_cache(path, str(tmp_path / 'cache'))
    assert read_manifest(str(tmp_path / 'cache'))['complete']
    assert len(os.listdir(tmp_path / 'cache' / 'logits')) == 5
    assert all(os.stat(tmp_path / 'cache' / 'logits' / f).st_mtime_ns == t for f, t in stamps.items())  # kept


def _coordinate_image(path, width=256, height=128):
    """Pixel (r, c) holds (c, r, 0): its own base coordinates."""
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    Image.fromarray(np.stack([cols, rows, np.zeros_like(rows)], -1).astype(np.uint8)).save(path)


def test_cached_logits_land_where_the_images_pixels_land(tmp_path):
    """A known logit pattern (each cached cell holds its own centre's base coordinates) through random
    resizes (0.5-2.0), crops and flips: every cell of the result holds the base coordinates that the image's
    pixel at that cell's centre came from."""
    (tmp_path / 'img').mkdir()
    (tmp_path / 'ann').mkdir()
    _coordinate_image(tmp_path / 'img' / 'a.png')
    Image.fromarray(np.zeros((128, 256), np.uint8)).save(tmp_path / 'ann' / 'a.png')
    xs, ys = np.meshgrid(np.arange(32) * 8 + 4.0, np.arange(16) * 8 + 4.0)  # cell centres, stride 8
    path = cache_file(str(tmp_path / 'cache'), str(tmp_path / 'img' / 'a.png'), str(tmp_path / 'img'))
    os.makedirs(osp.dirname(path))
    np.savez(path, logits=np.stack([xs, ys]).astype(np.float16), base_shape=np.array([128, 256]))
    pipeline = Compose(
        [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(
                type='LoadTeacherLogits',
                cache_dir=str(tmp_path / 'cache'),
                img_dir=str(tmp_path / 'img'),
                outputs=['logits'],
                stride=8,
            ),
            dict(type='RandomResizeWithTeacherLogits', scale=(256, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
            dict(type='RandomCropWithTeacherLogits', crop_size=(64, 96)),
            dict(type='RandomFlipWithTeacherLogits', prob=0.7, direction=['horizontal', 'vertical']),
            dict(type='PackSegInputsWithTeacherLogits'),
        ]
    )
    checked, flips = 0, set()
    for seed in range(40):
        np.random.seed(seed)
        out = pipeline(
            dict(
                img_path=str(tmp_path / 'img' / 'a.png'),
                seg_map_path=str(tmp_path / 'ann' / 'a.png'),
                reduce_zero_label=False,
                seg_fields=[],
            )
        )
        sample = out['data_samples']
        flips.add(sample.flip_direction if sample.flip else None)
        image = out['inputs'].numpy().astype(float)  # (3, h, w) in BGR: channel 2 = x, channel 1 = y
        logits = sample.teacher_logits.logits.float().numpy()
        h, w = image.shape[1:]
        assert logits.shape == (2, -(-h // 8), -(-w // 8))
        scale = sample.scale_factor[0]
        for i in range(logits.shape[1]):
            for j in range(logits.shape[2]):
                r, c = min(8 * i + 4, h - 1), min(8 * j + 4, w - 1)
                x, y = image[2, r, c] + 0.5, image[1, r, c] + 0.5  # the source pixel's centre, base coordinates
                if 4 + 2 / scale < x < 252 - 2 / scale and 4 + 2 / scale < y < 124 - 2 / scale:  # inside the grid
                    assert abs(logits[0, i, j] - x) <= 0.5 + 1 / scale and abs(logits[1, i, j] - y) <= 0.5 + 1 / scale
                    checked += 1
    assert checked > 1000 and flips == {None, 'horizontal', 'vertical'}


def test_an_unresized_uncropped_image_gets_the_cached_cells_unresampled():
    cached = {'logits': np.random.RandomState(0).randn(3, 4, 6).astype(np.float16)}
    direct = TeacherLogits(cached, 8, 1.0, 1.0).sample((32, 48))['logits']
    assert direct.dtype == torch.float16 and torch.equal(direct, torch.from_numpy(cached['logits']))
    resampled = TeacherLogits(cached, 8, 1.0, 1.0)
    resampled._is_identity = lambda *_: False  # the bilinear path lands exactly on the cell centres
    assert torch.equal(resampled.sample((32, 48))['logits'], direct)
    flipped = TeacherLogits(cached, 8, 1.0, 1.0)
    flipped.flipped('horizontal', (32, 48))
    assert torch.equal(flipped.sample((32, 48))['logits'], direct.flip(-1))
    direct[0, 0, 0] = 100  # a sample is a copy: the kept cache stays as built
    assert cached['logits'][0, 0, 0] != 100


def test_logits_read_once_are_kept_in_memory_up_to_memory_mb(tmp_path, setup):
    """Each file is read from disk once while the kept logits fit ``memory_mb``; the rest every time."""
    root, _, config = setup
    path = config(cache=tmp_path / 'cache')
    build_teacher_cache(path)
    image_dir = osp.join(root, 'img_dir', 'train')
    images = sorted(glob.glob(osp.join(image_dir, '*.png')))
    one_file = np.load(cache_file(str(tmp_path / 'cache'), images[0], image_dir))[LOGITS].nbytes

    def loader(memory_mb):
        load = Compose([dict(type='LoadImageFromFile')]).transforms[0]
        logits = LoadTeacherLogits(str(tmp_path / 'cache'), image_dir, [LOGITS], 8, memory_mb=memory_mb)
        return lambda image: logits(load(dict(img_path=image)))['teacher_logits'].arrays[LOGITS]

    kept_all, kept_two, kept_none = loader(256), loader(2.5 * one_file / 2**20), loader(0)
    first = [kept_all(image) for image in images]
    for read in (kept_two, kept_none):
        for image in images:
            read(image)
    shutil.rmtree(tmp_path / 'cache' / 'logits')
    assert all(np.array_equal(kept_all(image), logits) for image, logits in zip(images, first))
    assert [np.array_equal(kept_two(image), logits) for image, logits in zip(images[:2], first)] == [True, True]
    for read, image in ((kept_two, images[2]), (kept_none, images[0])):
        with pytest.raises(TeacherCacheError, match='has no logits for .*Rebuild it with'):
            read(image)


def test_the_data_benchmark_times_the_student_and_the_cached_pipelines(tmp_path, setup):
    _, _, config = setup
    path = config(cache=tmp_path / 'cache')
    build_teacher_cache(path)
    run = [sys.executable, 'tools/benchmark_data.py', path, '--samples', '4', '--repeats', '1']
    out = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert list(rows) == ['student', 'cached-disk', 'cached'] and rows['student'][1] == '1.000'
    assert all(float(ms) > 0 and float(ratio) > 0 for ms, ratio in rows.values())
    no_cache = subprocess.run(run[:2] + [config(name='live')], capture_output=True, text=True)
    assert no_cache.returncode != 0 and 'trains from no teacher cache' in no_cache.stderr
