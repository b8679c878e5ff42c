"""The hard digit crops (backbone pretraining for the digit-scenes student): generation, split, labels, and its
configs, whose student backbone is the segmentation demo student's."""

import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import DATASETS
from mmseg.registry import MODELS

import gdkd_seg  # noqa: F401
from gdkd_seg.classification.digit_crops import crop_settings, generate_crops, render_crop
from gdkd_seg.datasets.digit_scenes import digit_ink, load_digit_scans, split_scans
from gdkd_seg.models.cls_distiller import build_classifier

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS = osp.join(ROOT, 'configs', 'classification')
STUDENT = osp.join(CLS, 'resnet18w4s3_v1c_digit_crops.py')
TEACHER = osp.join(CLS, 'resnet18w32_v1c_digit_crops.py')
GDKD = osp.join(CLS, 'gdkd_r18w32_r18w4s3_digit_crops.py')
SEG_STUDENT = osp.join(ROOT, 'configs', 'demo', '_base_', 'fcn_student.py')
CLEAN = dict(noise_std=(0.0, 0.0), low_res=None, num_clutter_over=(0, 0))  # nothing drawn over the centre digit


def _crops(split='train', **kwargs):
    return DATASETS.build(dict(type='DigitCropsClsDataset', split=split, _scope_='mmpretrain', **kwargs))


def test_crops_are_deterministic_from_the_seed_and_bgr_uint8():
    a, b, c = _crops(num=12), _crops(num=12), _crops(num=12, seed=1)
    assert a.images.shape == (12, 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and [a.get_data_info(i)['gt_label'] for i in range(12)] == [
        b.get_data_info(i)['gt_label'] for i in range(12)
    ]
    assert not np.array_equal(a.images, c.images)
    rgb, _ = generate_crops('train', 12, 32, seed=0, split_seed=0, val_fraction=0.3)
    assert np.array_equal(a.get_data_info(3)['img'], rgb[3][..., ::-1])  # BGR, as LoadImageFromFile reads
    assert _crops(num=5, size=24).get_data_info(0)['img'].shape == (24, 24, 3)
    # the val crops do not depend on how many train crops there are
    assert np.array_equal(_crops('val', num=4).images, _crops('val', num=6).images[:4])


def test_train_and_val_crops_use_the_digit_scenes_disjoint_scans():
    _, targets = load_digit_scans()
    pools = split_scans(targets, 0.3, 0)  # the digit scenes' split (their default seed and val_fraction)
    train, val = _crops(num=300), _crops('val', num=300)
    train_scans, val_scans = {c.scan for c in train.centres}, {c.scan for c in val.centres}
    assert train_scans <= set(pools['train']) and val_scans <= set(pools['val'])
    assert not train_scans & val_scans and len(train_scans) > 100
    assert len({c.digit for c in val.centres}) == 10


def test_the_label_is_the_centred_scan_whose_ink_shows_on_top():
    scans, targets = load_digit_scans()
    pool = split_scans(targets, 0.3, 0)['train']
    dataset = _crops(num=20, settings=CLEAN)
    for i, centre in enumerate(dataset.centres):
        assert dataset.get_data_info(i)['gt_label'] == centre.digit == targets[centre.scan]
        y, x, h, w = centre.box
        assert abs(y + h // 2 - 16) <= 3 and abs(x + w // 2 - 16) <= 3  # centred, give or take the jitter
        ink = digit_ink(scans[centre.scan], h, w, 0.3)[0]
        patch = dataset.images[i][y : y + h, x : x + w][..., ::-1].astype(int)
        assert np.abs(patch[ink] - centre.colour).max() <= 1  # the labelled scan's ink, opaque, drawn last
    # the default settings (neighbours, clutter over the digit, blur, noise) render as well
    rng = np.random.default_rng(0)
    img, centre = render_crop(rng, scans, targets, pool, 32, crop_settings())
    assert img.shape == (32, 32, 3) and centre.digit in range(10)


def test_bad_split_and_settings_are_refused():
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        _crops('test', num=1)
    with pytest.raises(ValueError, match='split must be one of'):
        generate_crops('validation', 1, 32, 0, 0, 0.3)
    with pytest.raises(TypeError, match='Unknown digit-crop settings'):
        _crops(num=1, settings=dict(clutter=3))


def _segmentation_student_backbone():
    """The digit-scenes student's backbone as the demo configures it (segmentation strides and dilations)."""
    return MODELS.build(Config.fromfile(SEG_STUDENT).model.backbone)


def test_student_backbone_loads_strictly_into_the_segmentation_student():
    student = build_classifier(STUDENT)
    teacher = build_classifier(TEACHER)
    assert student(torch.randn(2, 3, 32, 32)).shape == teacher(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    seg = _segmentation_student_backbone()
    seg.load_state_dict(student.backbone.state_dict(), strict=True)
    assert all(torch.equal(v, student.backbone.state_dict()[k]) for k, v in seg.state_dict().items())
    with pytest.raises(RuntimeError, match='size mismatch'):
        seg.load_state_dict(teacher.backbone.state_dict(), strict=False)


def test_gdkd_digit_crops_trains_end_to_end(tmp_path, single_thread):
    from mmengine.runner import Runner

    torch.manual_seed(0)
    torch.save({'state_dict': build_classifier(TEACHER).state_dict()}, tmp_path / 'teacher.pth')
    cfg = Config.fromfile(GDKD)
    cfg.model.teacher_checkpoint = str(tmp_path / 'teacher.pth')
    cfg.train_dataloader.update(batch_size=8, dataset=dict(num=16))
    cfg.val_dataloader.update(batch_size=8, dataset=dict(num=8))
    cfg.update(work_dir=str(tmp_path / 'w'), log_level='WARNING', train_cfg=dict(max_epochs=1, val_interval=1))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.model.student.backbone.stem[0].weight.shape == (2, 3, 3, 3)  # stem_channels // 2
    data = runner.model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    losses = runner.model(**data, mode='loss')
    assert torch.isfinite(losses['distill.logits.loss_gdkd']) and losses['distill.logits.loss_gdkd'] > 0
    assert osp.isfile(tmp_path / 'w' / 'epoch_1.pth')
