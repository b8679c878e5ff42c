"""Classification distillation for backbone pretraining on mmpretrain: ClsDistiller on (N, C) logits, the digits
data set, the digits task end to end through the runner, and backbone export into a segmentation student."""

import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import DATASETS
from mmpretrain.structures import DataSample
from mmseg.registry import MODELS
from PIL import Image

import gdkd_seg  # noqa: F401
from gdkd_seg import runner
from gdkd_seg.config import resolve_model_cfg
from gdkd_seg.datasets.checks import DatasetNotFoundError
from gdkd_seg.export import check_backbone_fits, export_backbone, segmentation_backbone
from gdkd_seg.models.cls_distiller import build_classifier

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS = osp.join(ROOT, 'configs', 'classification')
DIGITS_TEACHER = osp.join(CLS, 'resnet18w32_v1c_digits.py')
DIGITS_STUDENT = osp.join(CLS, 'resnet18w16_v1c_digits.py')
DIGITS_GDKD = osp.join(CLS, 'gdkd_r18w32_r18w16_digits.py')
SEG_GDKD = osp.join(ROOT, 'configs', 'gdkd_deeplabv3_r101_r18_cityscapes.py')


def _model_cfg(path):
    return Config.fromfile(path).model


def _samples(labels):
    return [DataSample(metainfo=dict(img_shape=(32, 32))).set_gt_label(label) for label in labels]


def _scalars(work_dir):
    path = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert path, f'no scalars.json under {work_dir}'
    return [json.loads(line) for line in open(path[0])]


@pytest.fixture
def digits_teacher_ckpt(tmp_path):
    torch.manual_seed(0)
    teacher = build_classifier(DIGITS_TEACHER)
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return str(path)


def test_cls_distiller_uses_the_n_c_loss_path(digits_teacher_ckpt):
    cfg = _model_cfg(DIGITS_GDKD)
    cfg.teacher_checkpoint = digits_teacher_ckpt
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    loss_fn = model.distill_losses['logits']
    assert loss_fn.ignore_index is None  # class labels have no ignored value (ImageNet has a class 255)

    inputs, labels = torch.randn(4, 3, 32, 32), [3, 1, 4, 1]
    losses = model(inputs, _samples(labels), mode='loss')
    student_logits = model.student_recorder['head.fc']
    teacher_logits = model.teacher(inputs)['head.fc']
    assert student_logits.shape == teacher_logits.shape == (4, 10)
    expected = MODELS.build(dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, ignore_index=None))(
        student_logits, teacher_logits, torch.tensor(labels)
    )
    assert torch.allclose(losses['distill.logits.loss_gdkd'], expected)
    terms = sum(losses[f'distill.logits.gdkd_{t}'] for t in ('high', 'top', 'other'))
    assert torch.allclose(terms, expected.detach())
    assert 'loss' in losses  # the student's own cross-entropy (mmpretrain's head)

    teacher = model.teacher.model
    assert not any(k.startswith('teacher') for k in model.state_dict())
    assert not {id(p) for p in model.parameters()} & {id(p) for p in teacher.parameters()}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.student.head.fc.weight.grad.abs().sum() > 0

    model.eval()
    predicted = model(inputs, _samples(labels), mode='predict')
    assert torch.allclose(predicted[0].pred_score, model.student(inputs)[0].softmax(0))
    assert torch.equal(model(inputs, mode='tensor'), model.student(inputs))


def test_torchvision_teacher_loads_a_plain_torchvision_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(reference.state_dict(), tmp_path / 'resnet18.pth')  # torchvision's own file format
    cfg = _model_cfg(DIGITS_GDKD)
    cfg.update(
        teacher=dict(type='TorchvisionClassifier', name='resnet18', num_classes=10),
        teacher_checkpoint=str(tmp_path / 'resnet18.pth'),
    )
    cfg.distill_losses.logits.teacher = 'fc'
    model = MODELS.build(cfg)
    model.init_weights()
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.teacher(inputs)['fc'], reference(inputs), atol=1e-5)
    with pytest.raises(ValueError, match='teacher_checkpoint'):
        build_classifier(dict(type='TorchvisionClassifier', name='resnet18', weights='DEFAULT'))


def test_digits_dataset_is_real_disjoint_and_balanced():
    train = DATASETS.build(dict(type='DigitsClsDataset', split='train', _scope_='mmpretrain'))
    val = DATASETS.build(dict(type='DigitsClsDataset', split='val', _scope_='mmpretrain'))
    assert len(train) + len(val) == 1797
    sample = train.get_data_info(0)
    assert sample['img'].shape == (32, 32, 3) and sample['img'].dtype == np.uint8 and sample['img'].max() > 200
    counts = np.bincount([val.get_data_info(i)['gt_label'] for i in range(len(val))], minlength=10)
    assert counts.min() >= 50  # stratified: every digit in val


def test_missing_cifar100_root_is_a_clear_error(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(DatasetNotFoundError, match=r'CIFAR100 folder .*nowhere.* does not exist'):
        runner.train(
            osp.join(CLS, 'gdkd_r50_r18_cifar100.py'),
            {'train_dataloader.dataset.data_root': missing, 'val_dataloader.dataset.data_root': missing},
            work_dir=str(tmp_path / 'w'),
        )
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(RuntimeError, match=r'Cannot find CIFAR100 dataset in .*empty'):
        DATASETS.build(dict(type='CIFAR100', data_root=str(empty), split='train', download=False, _scope_='mmpretrain'))


def test_exported_backbone_loads_into_the_deeplabv3_r18_student(tmp_path):
    from mmengine.runner.checkpoint import load_checkpoint

    torch.manual_seed(0)
    distiller = MODELS.build(_model_cfg(osp.join(CLS, 'gdkd_r34_r18_imagenet.py')))
    distiller.student.init_weights()
    ckpt = str(tmp_path / 'epoch_100.pth')
    torch.save({'state_dict': distiller.state_dict(), 'meta': {'epoch': 100}}, ckpt)
    out = export_backbone(ckpt, str(tmp_path / 'r18_backbone.pth'))
    source = distiller.student.backbone.state_dict()

    # Strict MMEngine loading into the Cityscapes DeepLabV3-R18 student's backbone (dilated, SyncBN).
    backbone = check_backbone_fits(SEG_GDKD, out)
    assert set(backbone.state_dict()) == set(source)

    # The user's path: the student config's `pretrained` (init_cfg Pretrained) and the student's init_weights.
    student_cfg = Config.fromfile(SEG_GDKD).model.student
    for overrides in (
        dict(pretrained=out),
        dict(
            pretrained=None,
            backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='student.backbone.')),
        ),
    ):
        student = MODELS.build(resolve_model_cfg(dict(student_cfg, **overrides)))
        student.init_weights()
        loaded = student.backbone.state_dict()
        assert set(loaded) == set(source)
        assert all(torch.equal(loaded[k], source[k]) for k in source)

    # A checkpoint of another width names the mismatch.
    thin = build_classifier(DIGITS_STUDENT)
    torch.save({'state_dict': thin.state_dict()}, tmp_path / 'thin.pth')
    export_backbone(str(tmp_path / 'thin.pth'), str(tmp_path / 'thin_backbone.pth'))
    with pytest.raises(RuntimeError, match=r'size mismatch for stem\.0\.weight'):
        load_checkpoint(segmentation_backbone(SEG_GDKD), str(tmp_path / 'thin_backbone.pth'), strict=True)


def test_distiller_hook_warms_up_over_epochs_and_evaluates_the_teacher(tmp_path, digits_teacher_ckpt):
    from mmengine.runner import Runner

    from gdkd_seg.engine import evaluate_teacher

    cfg = Config.fromfile(DIGITS_GDKD)
    cfg.model.update(teacher_checkpoint=digits_teacher_ckpt, val_teacher=True)
    cfg.train_dataloader.update(batch_size=8, dataset=dict(indices=16))  # 2 iterations per epoch
    cfg.val_dataloader.dataset.indices = 16
    cfg.update(
        work_dir=str(tmp_path / 'w'),
        log_level='WARNING',
        custom_hooks=[dict(type='DistillWarmupHook', warmup_epochs=2), dict(type='TeacherEvalHook')],
    )
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    trained = Runner.from_cfg(cfg)
    trained.train()
    assert trained.model.distill_scale == pytest.approx(0.5)  # 2 of 4 warm-up iterations

    teacher = trained.model.teacher.model
    inputs, labels = [], []
    for i in range(16):
        item = trained.val_dataloader.dataset[i]
        inputs.append(item['inputs'])
        labels.append(int(item['data_samples'].gt_label))
    batch = trained.model.data_preprocessor(dict(inputs=inputs, data_samples=None))['inputs']
    with torch.no_grad():
        expected = (teacher(batch).argmax(1) == torch.tensor(labels)).float().mean().item() * 100
    assert evaluate_teacher(trained)['accuracy/top1'] == pytest.approx(expected)


@pytest.mark.slow
def test_digits_teacher_then_gdkd_student_through_train_py(tmp_path, single_thread):
    """The user's path on real scans: train a teacher, distill the student with GDKD, evaluate, export."""
    from mmengine.runner.checkpoint import load_checkpoint

    teacher_dir, student_dir = str(tmp_path / 'teacher'), str(tmp_path / 'gdkd')
    epochs = Config.fromfile(DIGITS_GDKD).train_cfg.max_epochs
    runner.train(DIGITS_TEACHER, work_dir=teacher_dir)
    teacher_acc = [s['accuracy/top1'] for s in _scalars(teacher_dir) if 'accuracy/top1' in s]
    teacher_ckpt = osp.join(teacher_dir, f'epoch_{epochs}.pth')

    runner.train(DIGITS_GDKD, {'model.teacher_checkpoint': teacher_ckpt}, work_dir=student_dir)
    scalars = _scalars(student_dir)
    logged = [s for s in scalars if 'distill.logits.gdkd_other' in s]
    assert logged and all(np.isfinite(s['distill.logits.loss_gdkd']) for s in logged)
    assert logged[0]['distill_scale'] < 1 and logged[-1]['distill_scale'] == 1  # warm-up over the first epoch
    student_acc = [s['accuracy/top1'] for s in scalars if 'accuracy/top1' in s]
    print(f'digits top-1: teacher {teacher_acc[-1]:.2f}, GDKD student {student_acc[-1]:.2f}')
    assert teacher_acc[-1] > 50 and student_acc[-1] > 50  # chance is 10%

    student_ckpt = osp.join(student_dir, f'epoch_{epochs}.pth')
    metrics = runner.test(
        DIGITS_GDKD, student_ckpt, {'model.teacher_checkpoint': teacher_ckpt}, work_dir=str(tmp_path / 'test')
    )
    assert metrics['accuracy/top1'] == pytest.approx(student_acc[-1])

    out = export_backbone(student_ckpt, str(tmp_path / 'backbone.pth'))
    seg_backbone = dict(
        _model_cfg(DIGITS_STUDENT).backbone, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True
    )  # as a segmentation backbone (output stride 8)
    backbone = MODELS.build(seg_backbone)
    load_checkpoint(backbone, out, strict=True)
    trained = torch.load(student_ckpt, weights_only=False)['state_dict']
    assert torch.equal(backbone.stem[0].weight, trained['student.backbone.stem.0.weight'])


@pytest.mark.slow
def test_imagenet_gdkd_config_on_a_class_folder_tree(tmp_path, single_thread):
    """The real ImageNet config (torchvision ResNet-34 teacher from a local file, 224 crops, top-5) for one
    iteration on a tiny class-folder tree (two classes, so mmpretrain's CustomDataset reads it instead of its
    1000-class ImageNet), through the runner."""
    import torchvision

    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for name in ('n01440764', 'n01443537'):
            path = tmp_path / 'imagenet' / split / name / f'{name}_0.JPEG'
            path.parent.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(path, format='JPEG')
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / 'resnet34.pth')
    data = str(tmp_path / 'imagenet')
    options = {
        f'{loader}.{key}': value
        for loader in ('train_dataloader', 'val_dataloader')
        for key, value in (
            ('batch_size', 2),
            ('num_workers', 0),
            ('persistent_workers', False),
            ('dataset.data_root', data),
            ('dataset.type', 'CustomDataset'),
        )
    }
    work = str(tmp_path / 'work')
    runner.train(
        osp.join(CLS, 'gdkd_r34_r18_imagenet.py'),
        dict(
            options,
            **{
                'model.teacher_checkpoint': str(tmp_path / 'resnet34.pth'),
                'train_cfg.max_epochs': 1,
                'default_hooks.logger.interval': 1,
            },
        ),
        work_dir=work,
    )
    scalars = _scalars(work)
    assert any('distill.logits.gdkd_top' in s for s in scalars)
    val = [s for s in scalars if 'accuracy/top5' in s]
    assert val and val[-1]['accuracy/top5'] >= val[-1]['accuracy/top1']
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
