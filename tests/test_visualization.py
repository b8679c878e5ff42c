"""Partition pictures: map values on crafted logits, the PNG, the tool and the training hook."""

import glob
import math
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from helpers import runner_cfg, save_random_segmentor, tiny_segmentor, write_seg_folder
from mmengine.runner import Runner
from mmseg.registry import MODELS
from PIL import Image

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import GDKDLoss
from gdkd_seg.visualization import (
    draw_partitions,
    figure_layout,
    gdkd_settings,
    partition_figure,
    partition_maps,
    visualize_partitions,
)
from gdkd_seg.visualization.partitions import DIFFERS_RGB

# One image of 2x2 pixels, 4 classes, no ties. With k=2 the teacher's top groups are
# (0,0): {0,1}, top-1 0   (0,1): {2,3}, top-1 2   (1,0): {0,3}, top-1 0   (1,1): {1,2}, top-1 1
TEACHER = torch.tensor(
    [[[4.0, 1.0], [5.0, 0.0]], [[3.0, 2.0], [1.0, 3.0]], [[2.0, 6.0], [2.0, 2.5]], [[1.0, 3.0], [3.0, 1.0]]]
)
GT = torch.tensor([[1, 0], [0, 255]])  # in top-2 not top-1 | outside top-2 | top-1 | ignored
SETTINGS = dict(topk=2, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, ignore_index=255)


def _softmax(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def test_teacher_maps_on_crafted_logits():
    maps = partition_maps(TEACHER, gt=GT, **SETTINGS)
    assert set(maps) == {'teacher_top1', 'top_mass', 'entropy', 'valid', 'gt', 'gt_outside_topk', 'gt_not_top1'}
    assert all(v.shape == (2, 2) for v in maps.values())
    assert maps['teacher_top1'].tolist() == [[0, 2], [0, 1]]
    assert maps['valid'].tolist() == [[True, True], [True, False]]
    assert maps['gt_outside_topk'].tolist() == [[False, True], [False, False]]
    assert maps['gt_not_top1'].tolist() == [[True, True], [False, False]]
    top_groups = {(0, 0): (0, 1), (0, 1): (2, 3), (1, 0): (0, 3), (1, 1): (1, 2)}
    for (y, x), group in top_groups.items():
        p = _softmax(TEACHER[:, y, x].tolist())
        assert maps['top_mass'][y, x].item() == pytest.approx(sum(p[i] for i in group), rel=1e-6)
        assert maps['entropy'][y, x].item() == pytest.approx(-sum(q * math.log(q) for q in p), rel=1e-6)


def test_temperature_flattens_the_teacher_maps():
    cold = partition_maps(TEACHER, **SETTINGS)
    hot = partition_maps(TEACHER, **dict(SETTINGS, temperature=4.0))
    assert torch.equal(cold['teacher_top1'], hot['teacher_top1'])
    assert (hot['entropy'] > cold['entropy']).all()
    p = _softmax([v / 4.0 for v in TEACHER[:, 0, 0].tolist()])
    assert hot['top_mass'][0, 0].item() == pytest.approx(p[0] + p[1], rel=1e-6)


def test_loss_maps_are_the_loss_per_pixel():
    torch.manual_seed(0)
    student = torch.randn(4, 2, 2)
    maps = partition_maps(TEACHER, gt=GT, student_logits=student, **SETTINGS)
    loss = GDKDLoss(topk=2, w0=1.0, w1=1.0, w2=2.0)
    # each pixel alone, as an (N, C) sample
    for y in range(2):
        for x in range(2):
            terms = loss.forward_terms(student[None, :, y, x], TEACHER[None, :, y, x])
            for name in ('high', 'top', 'other'):
                assert maps[name][y, x].item() == pytest.approx(terms[name].item(), rel=1e-5, abs=1e-7)
    # the mean over labelled pixels is the training loss on the whole map
    assert maps['loss'][maps['valid']].mean().item() == pytest.approx(
        loss(student[None], TEACHER[None], GT[None]).item(), rel=1e-5
    )
    # the high-level term by hand at pixel (0, 0): top group {0, 1}
    pt, ps = _softmax(TEACHER[:, 0, 0].tolist()), _softmax(student[:, 0, 0].tolist())
    bt, bs = pt[0] + pt[1], ps[0] + ps[1]
    high = bt * math.log(bt / bs) + (1 - bt) * math.log((1 - bt) / (1 - bs))
    assert maps['high'][0, 0].item() == pytest.approx(high, rel=1e-5)
    assert torch.allclose(maps['loss'], maps['high'] + maps['top'] + maps['other'])
    same = partition_maps(TEACHER, student_logits=TEACHER.clone(), **SETTINGS)
    assert same['loss'].abs().max() < 1e-6


def test_teacher_scaling_is_applied_as_in_the_loss():
    torch.manual_seed(0)
    teacher, student = torch.randn(2, 6, 5, 7) * 3, torch.randn(2, 6, 5, 7)
    gt = torch.randint(0, 6, (2, 5, 7))
    gt[0, 0] = 255
    loss = GDKDLoss(topk=2, teacher_scaling=dict(type='TopKScaling', k=3, gt_scale=3.0))
    settings = gdkd_settings(type('Fake', (), {'distill_losses': {'d': loss}})())
    assert settings['teacher_scaling'] is loss.teacher_scaling
    maps = partition_maps(teacher, gt=gt, student_logits=student, **settings)
    plain = partition_maps(teacher, gt=gt, student_logits=student, **dict(settings, teacher_scaling=None))
    assert maps['loss'][maps['valid']].mean().item() == pytest.approx(loss(student, teacher, gt).item(), rel=1e-5)
    assert not torch.allclose(maps['top_mass'], plain['top_mass'])


def test_batched_maps_chunked_and_resized():
    torch.manual_seed(0)
    teacher, student = torch.randn(2, 5, 6, 8), torch.randn(2, 5, 6, 8)
    gt = torch.randint(0, 5, (2, 6, 8))
    whole = partition_maps(teacher, 3, gt, student)
    chunked = partition_maps(teacher, 3, gt, student, chunk_rows=7)
    assert whole['loss'].shape == (2, 6, 8)
    assert all(torch.allclose(whole[k].float(), chunked[k].float()) for k in whole)
    # a larger teacher is resized to the student's size, as the loss does
    big = partition_maps(torch.randn(2, 5, 12, 16), 3, gt, student)
    assert big['teacher_top1'].shape == big['loss'].shape == (2, 6, 8)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r'topk < C, got topk=4 .*C=4'):
        partition_maps(TEACHER, 4)
    with pytest.raises(
        ValueError, match=r'labels must lie in \[0, 4\) outside ignore_index=255, got values in \[0, 7\]'
    ):
        partition_maps(TEACHER, 2, torch.tensor([[7, 0], [0, 255]]))


def test_settings_follow_the_distillers_gdkd_loss():
    class Fake:
        distill_losses = {'decode': GDKDLoss(topk=5, w2=8.0, temperature=2.0, ignore_index=0)}

    assert gdkd_settings(Fake()) == dict(
        topk=5, w0=1.0, w1=1.0, w2=8.0, temperature=2.0, ignore_index=0, teacher_scaling=None
    )
    assert gdkd_settings(Fake(), topk=2)['topk'] == 2
    assert gdkd_settings(None)['topk'] == GDKDLoss().topk
    with pytest.raises(ValueError, match='topk'):
        gdkd_settings(None, topk=0)


def test_png_is_written_with_the_layout_size(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(2, 2, 3), dtype=np.uint8)
    image = np.kron(image, np.ones((24, 32, 1), np.uint8))  # 48x64 image, maps are 2x2
    torch.manual_seed(0)
    full = partition_maps(TEACHER, gt=GT, student_logits=torch.randn(4, 2, 2), **SETTINGS)
    picture = draw_partitions(
        image,
        full,
        2,
        ['road', 'car', 'sky', 'tree'],
        [[128, 64, 128], [0, 0, 142], [70, 130, 180], [107, 142, 35]],
        title='crafted',
        panel_width=300,
    )
    path = tmp_path / 'full.png'
    mmcv.imwrite(mmcv.rgb2bgr(picture), str(path))
    with Image.open(path) as png:
        assert png.mode == 'RGB'
        rows, cols, width, height = figure_layout(11, 1.0, 300)  # 11 panels of the 2x2 maps
        assert (rows, cols) == (3, 4) and png.size == (width, height) == (1200, height)
        pixels = np.asarray(png)
    # the flagged pixel (GT outside the top-2) is painted in red
    assert (np.abs(pixels.astype(int) - DIFFERS_RGB).sum(axis=2) < 10).sum() > 100

    teacher_only = draw_partitions(image, partition_maps(TEACHER, 2), 2, panel_width=300)
    assert teacher_only.shape[:2][::-1] == figure_layout(4, 1.0, 300)[2:]


@pytest.mark.parametrize('panel_width', [200, 256, 480])
def test_panel_titles_stay_inside_the_figure_and_apart(panel_width):
    torch.manual_seed(0)
    maps = partition_maps(TEACHER, gt=GT, student_logits=torch.randn(4, 2, 2), **SETTINGS)
    fig = partition_figure(np.zeros((2, 2, 3), np.uint8), maps, 2, title='crafted', panel_width=panel_width)
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    rows = {}
    for ax in fig.axes:
        if ax.get_title():
            box = ax.title.get_window_extent(renderer)
            assert 0 <= box.x0 and box.x1 <= fig.bbox.width, (ax.get_title(), box)
            rows.setdefault(round(ax.get_position().y1, 2), []).append(box)
    assert sum(map(len, rows.values())) == 11
    for boxes in rows.values():
        boxes.sort(key=lambda b: b.x0)
        assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:]))


# ----------------------------------------------------------------------------
# end to end: the tool and the hook on tiny models
# ----------------------------------------------------------------------------
def _distiller(teacher_ckpt):
    return dict(
        type='SegDistiller',
        student=tiny_segmentor(3, width=8),
        teacher=tiny_segmentor(3, width=16),
        teacher_checkpoint=str(teacher_ckpt),
        distill_losses=dict(
            decode=dict(
                student='decode_head.conv_seg',
                teacher='decode_head.conv_seg',
                loss=dict(type='GDKDLoss', topk=2, w0=1.0, w1=1.0, w2=2.0),
            )
        ),
    )


@pytest.fixture
def toy(tmp_path):
    root = write_seg_folder(str(tmp_path / 'data'), n_train=2, n_val=2, size=(48, 64))
    teacher_ckpt = save_random_segmentor(tmp_path / 'teacher.pth', aux=False)
    return root, teacher_ckpt


@pytest.mark.slow
def test_tool_writes_one_png_per_image(tmp_path, toy):
    root, teacher_ckpt = toy
    cfg = runner_cfg(tmp_path / 'work', root, _distiller(teacher_ckpt))
    cfg.dump(tmp_path / 'distiller.py')
    model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, tmp_path / 'distiller.pth')

    written = visualize_partitions(
        str(tmp_path / 'distiller.py'),
        str(tmp_path / 'distiller.pth'),
        osp.join(root, 'img_dir', 'val'),
        str(tmp_path / 'out'),
        ann=osp.join(root, 'ann_dir', 'val'),
        panel_width=200,
    )
    assert [osp.basename(p) for p in written] == ['000_partitions.png', '001_partitions.png']
    for path in written:
        with Image.open(path) as png:
            assert png.size == figure_layout(11, 48 / 64, 200)[2:]  # every panel: GT and student present

    # a plain MMSeg config and checkpoint: the teacher-side panels (image, GT, top-1, b_A, entropy, 2 flags)
    plain = runner_cfg(tmp_path / 'work', root, tiny_segmentor(3, width=16))
    plain.dump(tmp_path / 'plain.py')
    written = visualize_partitions(
        str(tmp_path / 'plain.py'),
        str(teacher_ckpt),
        osp.join(root, 'img_dir', 'val', '001.png'),
        str(tmp_path / 'plain'),
        ann=osp.join(root, 'ann_dir', 'val', '001.png'),
        topk=1,
        panel_width=200,
    )
    with Image.open(written[0]) as png:
        assert png.size == figure_layout(7, 48 / 64, 200)[2:]

    # an exported (plain) student checkpoint with the distiller config; no annotation: no GT panels
    torch.save({'state_dict': model.student.state_dict()}, tmp_path / 'student.pth')
    written = visualize_partitions(
        str(tmp_path / 'distiller.py'),
        str(tmp_path / 'student.pth'),
        osp.join(root, 'img_dir', 'val', '000.png'),
        str(tmp_path / 'student'),
        panel_width=200,
    )
    with Image.open(written[0]) as png:  # image, top-1, b_A, entropy, loss and its 3 terms
        assert png.size == figure_layout(8, 48 / 64, 200)[2:]

    with pytest.raises(RuntimeError, match=r'distiller\.pth does not fit the model of .*plain\.py'):
        visualize_partitions(
            str(tmp_path / 'plain.py'),
            str(tmp_path / 'distiller.pth'),
            osp.join(root, 'img_dir', 'val'),
            str(tmp_path / 'x'),
        )
    with pytest.raises(FileNotFoundError, match=r'no annotation for .*000\.png'):
        visualize_partitions(
            str(tmp_path / 'plain.py'),
            str(teacher_ckpt),
            osp.join(root, 'img_dir', 'val'),
            str(tmp_path / 'x'),
            ann=str(tmp_path),
        )


@pytest.mark.slow
def test_hook_writes_pictures_during_training(tmp_path, toy):
    root, teacher_ckpt = toy
    cfg = runner_cfg(tmp_path / 'work', root, _distiller(teacher_ckpt), max_iters=2)
    cfg['custom_hooks'] = [dict(type='PartitionVisualizationHook', interval=1, num_images=1, panel_width=200)]
    cfg['visualizer'] = dict(
        type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
    )
    Runner.from_cfg(cfg).train()
    vis_data = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data'))[0]
    files = sorted(osp.basename(p) for p in glob.glob(osp.join(vis_data, 'vis_image', '*.png')))
    assert files == ['partitions_000_1.png', 'partitions_000_2.png']
    with Image.open(osp.join(vis_data, 'vis_image', files[0])) as png:
        assert png.size == figure_layout(11, 48 / 64, 200)[2:]
    assert glob.glob(osp.join(vis_data, 'events.out.tfevents.*'))


def test_hook_needs_a_val_set(tmp_path, toy):
    root, teacher_ckpt = toy
    cfg = runner_cfg(tmp_path / 'work', root, _distiller(teacher_ckpt), max_iters=1, val=False)
    cfg['custom_hooks'] = [dict(type='PartitionVisualizationHook', interval=1)]
    with pytest.raises(ValueError, match='needs val_dataloader'):
        Runner.from_cfg(cfg).train()
