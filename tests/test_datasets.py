"""ADE20K, COCO-Stuff-164k and Pascal VOC aug: each data set's GDKD config (R101 teacher, R18 student), shrunk
to tiny images, trained, validated, tested and exported on a generated tree in the data set's on-disk layout;
the label checks of each layout; class counts of student, teacher and data set."""

import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import CONFIGS, random_teacher, scalars, shrink
from mmengine.config import Config
from PIL import Image

from gdkd_seg import runner
from gdkd_seg.config import load_config, resolve_model_cfg
from gdkd_seg.datasets.checks import leaf_datasets
from gdkd_seg.export import export_student

pytestmark = pytest.mark.usefixtures('single_thread')  # tiny images: a second thread only adds contention

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


# -- generated trees in each data set's layout -----------------------------------------------------------------


def _scene(rng, size, values, block=8):
    """A label map of ``block``-pixel squares drawn from ``values`` (each value at least once) and an image
    whose colour follows the label (so the maps are learnable)."""
    h, w = size[0] // block, size[1] // block
    cells = rng.choice(values, size=h * w)
    cells[: len(values)] = values[: h * w]
    label = cells.reshape(h, w).repeat(block, 0).repeat(block, 1).astype(np.uint8)
    image = (label[..., None].astype(int) * 37 % 256 + rng.integers(0, 40, (*size, 3))).clip(0, 255)
    return image.astype(np.uint8), label


def _save(path, array):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def write_ade20k_tree(root, n_train=2, n_val=1, size=(32, 32), seed=0):
    """ADEChallengeData2016: images/{training,validation}/ADE_*.jpg, annotations/.../ADE_*.png with 0 ("other",
    ignored through reduce_zero_label) and classes 1..150 (the edges 1 and 150 included)."""
    rng = np.random.default_rng(seed)
    for split, kind, n in (('training', 'train', n_train), ('validation', 'val', n_val)):
        for i in range(n):
            image, label = _scene(rng, size, np.array([0, 1, 150, 7, 42, 99]))
            _save(f'{root}/images/{split}/ADE_{kind}_{i + 1:08d}.jpg', image)
            _save(f'{root}/annotations/{split}/ADE_{kind}_{i + 1:08d}.png', label)
    return root


def write_coco_stuff_tree(root, n_train=2, n_val=1, size=(32, 32), seed=0):
    """coco_stuff164k: images/{train2017,val2017}/*.jpg and the converter's annotations/.../*_labelTrainIds.png
    (train ids 0..170, 255 unlabelled)."""
    rng = np.random.default_rng(seed)
    for split, n in (('train2017', n_train), ('val2017', n_val)):
        for i in range(n):
            image, label = _scene(rng, size, np.array([0, 170, 255, 12, 91, 140]))
            stem = f'{i + 9 + 100 * (split == "val2017"):012d}'
            _save(f'{root}/images/{split}/{stem}.jpg', image)
            _save(f'{root}/annotations/{split}/{stem}_labelTrainIds.png', label)
    return root


def write_voc_aug_tree(root, n_train=1, n_aug=1, n_val=1, size=(32, 32), seed=0):
    """VOCdevkit/VOC2012: JPEGImages/*.jpg, SegmentationClass/*.png (VOC's own train and val maps),
    SegmentationClassAug/*.png (SBD's, from voc_aug.py) and ImageSets/Segmentation/{train,aug,val}.txt;
    classes 0..20, 255 on object boundaries."""
    rng = np.random.default_rng(seed)
    voc = f'{root}/VOC2012'
    splits = (
        (100, 'train', 'SegmentationClass', n_train),
        (200, 'aug', 'SegmentationClassAug', n_aug),
        (300, 'val', 'SegmentationClass', n_val),
    )
    for first, split, folder, n in splits:
        names = [f'2007_{first + i:06d}' for i in range(n)]
        for name in names:
            image, label = _scene(rng, size, np.array([0, 20, 255, 3, 15]))
            _save(f'{voc}/JPEGImages/{name}.jpg', image)
            _save(f'{voc}/{folder}/{name}.png', label)
        os.makedirs(f'{voc}/ImageSets/Segmentation', exist_ok=True)
        with open(f'{voc}/ImageSets/Segmentation/{split}.txt', 'w') as f:
            f.writelines(name + '\n' for name in names)
    return voc


DATASETS = {  # config, tree writer, data root under the tree, classes, a label map to corrupt
    'ade20k': (
        'ade20k/gdkd_deeplabv3_r101_r18_ade20k.py',
        write_ade20k_tree,
        'ade',
        150,
        'annotations/training/ADE_train_00000001.png',
    ),
    'coco_stuff164k': (
        'coco_stuff164k/gdkd_deeplabv3_r101_r18_coco_stuff164k.py',
        write_coco_stuff_tree,
        'coco',
        171,
        'annotations/train2017/000000000009_labelTrainIds.png',
    ),
    'voc12aug': (
        'voc12aug/gdkd_deeplabv3_r101_r18_voc12aug.py',
        write_voc_aug_tree,
        'VOCdevkit',
        21,
        'SegmentationClassAug/2007_000200.png',
    ),
}


# -- shrinking a real config -----------------------------------------------------------------------------------


# -- tests -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', sorted(DATASETS))
def test_config_follows_the_data_set(name):
    config, _, _, num_classes, _ = DATASETS[name]
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    student, teacher = resolve_model_cfg(cfg.model.student), resolve_model_cfg(cfg.model.teacher)
    assert student.decode_head.num_classes == teacher.decode_head.num_classes == num_classes
    assert student.auxiliary_head.num_classes == num_classes
    assert (student.backbone.depth, teacher.backbone.depth) == (18, 101)
    assert (student.decode_head.in_channels, student.decode_head.channels) == (512, 128)
    assert (student.auxiliary_head.in_channels, student.auxiliary_head.channels) == (256, 64)
    assert student.pretrained == 'open-mmlab://resnet18_v1c'
    assert cfg.model.teacher_checkpoint.startswith('https://download.openmmlab.com/mmsegmentation/')
    assert cfg.train_cfg.max_iters == 80000 and cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.optim_wrapper.optimizer.lr == 0.02
    crops = [
        t.crop_size for d in leaf_datasets(cfg.train_dataloader.dataset) for t in d.pipeline if t.type == 'RandomCrop'
    ]
    assert crops and all(tuple(c) == (512, 512) for c in crops)
    losses = cfg.model.distill_losses
    assert losses.decode.loss.type == losses.aux.loss.type == 'GDKDLoss'
    assert (losses.decode.loss.loss_weight, losses.aux.loss.loss_weight) == (1.0, 0.4)
    plain = load_config(osp.join(CONFIGS, name, f'student_deeplabv3_r18_{name}.py'))
    assert plain.model.backbone.depth == 18 and plain.model.decode_head.num_classes == num_classes
    assert plain.train_cfg.max_iters == 80000 and plain.param_scheduler[0].end == 80000
    assert plain.optim_wrapper.optimizer.lr == 0.02 and plain.train_dataloader.batch_size == 2


@pytest.mark.parametrize('name', sorted(DATASETS))
def test_label_out_of_range_is_refused_with_the_file(tmp_path, name):
    config, write_tree, sub, num_classes, corrupt = DATASETS[name]
    data_root = write_tree(str(tmp_path / sub))
    label = np.array(Image.open(osp.join(data_root, corrupt)))
    # one value past the last class as the annotation stores it (ADE20K's are shifted by reduce_zero_label)
    label[0, 0] = num_classes + 1 if name == 'ade20k' else num_classes
    Image.fromarray(label).save(osp.join(data_root, corrupt))
    cfg = shrink(osp.join(CONFIGS, config), data_root, str(tmp_path / 'no_teacher.pth'), str(tmp_path / 'cfg.py'))
    with pytest.raises(
        ValueError,
        match=rf'{osp.basename(corrupt)}: label values \[{num_classes}\] are outside '
        rf'\[0, {num_classes}\)',
    ):
        runner.train(cfg, work_dir=str(tmp_path / 'work'))  # refused before any model is built


def test_ade20k_zero_label_is_ignored(tmp_path):
    from mmseg.datasets.transforms import LoadAnnotations

    data_root = write_ade20k_tree(str(tmp_path / 'ade'))
    cfg = Config.fromfile(osp.join(CONFIGS, DATASETS['ade20k'][0]))
    dataset = dict(cfg.train_dataloader.dataset, data_root=data_root, pipeline=[])
    from mmseg.registry import DATASETS as REGISTRY

    info = REGISTRY.build(dataset).get_data_info(0)
    raw = np.array(Image.open(info['seg_map_path']))
    loaded = LoadAnnotations()(dict(info, seg_fields=[]))['gt_seg_map']
    assert set(np.unique(raw)) == {0, 1, 7, 42, 99, 150}
    assert np.array_equal(loaded, np.where(raw == 0, 255, raw.astype(int) - 1))  # 0 -> 255, 1..150 -> 0..149


def test_voc_aug_trains_on_voc_train_and_sbd_aug(tmp_path):
    from mmseg.registry import DATASETS as REGISTRY

    data_root = write_voc_aug_tree(str(tmp_path / 'VOCdevkit'), n_train=2, n_aug=3)
    cfg = Config.fromfile(osp.join(CONFIGS, DATASETS['voc12aug'][0]))
    leaves = leaf_datasets(cfg.train_dataloader.dataset)
    maps = [
        sorted(
            osp.relpath(d['seg_map_path'], data_root)
            for d in REGISTRY.build(dict(leaf, data_root=data_root, pipeline=[])).load_data_list()
        )
        for leaf in leaves
    ]
    assert [len(m) for m in maps] == [2, 3]
    assert all(m.startswith('SegmentationClass/') for m in maps[0])
    assert all(m.startswith('SegmentationClassAug/') for m in maps[1])


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(DATASETS))
def test_gdkd_trains_validates_tests_and_exports(tmp_path, name):
    from mmseg.apis import inference_model, init_model

    config, write_tree, sub, num_classes, _ = DATASETS[name]
    data_root = write_tree(str(tmp_path / sub))
    config = osp.join(CONFIGS, config)
    teacher_ckpt = random_teacher(config, tmp_path / 'teacher.pth')
    cfg = shrink(config, data_root, teacher_ckpt, str(tmp_path / f'{name}.py'))
    work = str(tmp_path / 'work')
    runner.train(cfg, work_dir=work)
    logged = scalars(work)
    assert any('mIoU' in s for s in logged), 'validation did not log mIoU'
    train = [s for s in logged if 'distill.decode.loss_gdkd' in s]
    assert len(train) == 2 and all(
        np.isfinite(s['distill.decode.loss_gdkd']) and np.isfinite(s['distill.aux.loss_gdkd']) for s in train
    )
    ckpt = osp.join(work, 'iter_2.pth')
    state = torch.load(ckpt, weights_only=False)['state_dict']
    assert state['student.decode_head.conv_seg.weight'].shape[0] == num_classes
    assert not any(k.startswith('teacher') for k in state)

    metrics = runner.test(cfg, ckpt, work_dir=str(tmp_path / 'test'))
    assert 0.0 <= metrics['mIoU'] <= 100.0

    weights, student_cfg = export_student(cfg, ckpt, str(tmp_path / 'student.pth'))
    exported = torch.load(weights, weights_only=False)['state_dict']
    assert all(torch.equal(v, state[f'student.{k}']) for k, v in exported.items())
    plain = init_model(student_cfg, weights, device='cpu')
    assert sorted(exported) == sorted(plain.state_dict())
    image = sorted(glob.glob(osp.join(data_root, '**', '*.jpg'), recursive=True))[-1]
    pred = inference_model(plain, image).pred_sem_seg.data
    assert pred.shape[-2:] == (32, 32) and int(pred.max()) < num_classes
