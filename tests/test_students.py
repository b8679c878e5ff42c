"""Students beyond ResNet against the DeepLabV3-R101 teacher: SegFormer MiT-B0 and DeepLabV3+ MobileNetV2 (logits
at 1/4 against the teacher's 1/8) with GDKD, feature-only and block-wise KD across architectures (MiT stages
recorded as the backbone's outputs), the recorder's errors, and class counts across data sets."""

import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import CONFIGS, merged, random_teacher, scalars, shrink, small_model, tiny_segmentor, write_cityscapes_tree
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from gdkd_seg import runner
from gdkd_seg.config import resolve_model_cfg
from gdkd_seg.models import ModuleOutputRecorder

pytestmark = pytest.mark.usefixtures('single_thread')  # tiny images: a second thread only adds contention

STUDENTS = {  # config -> (data set, student backbone, has an auxiliary head)
    'students/gdkd_deeplabv3_r101_segformer_b0_cityscapes.py': ('cityscapes', 'MixVisionTransformer', False),
    'students/gdkd_deeplabv3_r101_deeplabv3plus_mv2_cityscapes.py': ('cityscapes', 'MobileNetV2', True),
    'students/gdkd_deeplabv3_r101_segformer_b0_ade20k.py': ('ade20k', 'MixVisionTransformer', False),
    'students/gdkd_deeplabv3_r101_deeplabv3plus_mv2_ade20k.py': ('ade20k', 'MobileNetV2', True),
}
CLASSES = dict(cityscapes=19, ade20k=150)
SEGFORMER = osp.join(CONFIGS, 'students/gdkd_deeplabv3_r101_segformer_b0_cityscapes.py')
MOBILENET = osp.join(CONFIGS, 'students/gdkd_deeplabv3_r101_deeplabv3plus_mv2_cityscapes.py')
FKD = osp.join(CONFIGS, 'feature/fkd_deeplabv3_r101_segformer_b0_cityscapes.py')
BLOCKWISE = osp.join(CONFIGS, 'feature/blockwise_deeplabv3_r101_segformer_b0_cityscapes.py')
SIZE = (64, 128)  # 1/4: 16x32, 1/8: 8x16


@pytest.fixture(scope='module')
def cityscapes_teacher_ckpt(tmp_path_factory):
    """A randomly initialised Cityscapes DeepLabV3-R101 teacher, saved once for the module."""
    return random_teacher(SEGFORMER, tmp_path_factory.mktemp('teacher') / 'teacher.pth')


def distiller(config, cityscapes_teacher_ckpt, tmp_path):
    """The config's distiller, shrunk as the end-to-end tests shrink it, with the teacher loaded, in train mode."""
    cfg = Config.fromfile(shrink(config, str(tmp_path), cityscapes_teacher_ckpt, str(tmp_path / 'cfg.py'), crop=SIZE))
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.train()


def batch(num=2, size=SIZE, num_classes=19, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num):
        label = torch.randint(0, num_classes, (1, *size), generator=g)
        label[:, :4] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=size, ori_shape=size, pad_shape=size))
        samples.append(sample)
    return torch.randn(num, 3, *size, generator=g), samples


def has_grad(param):
    return param.grad is not None and param.grad.abs().sum() > 0


# -- GDKD with SegFormer and DeepLabV3+ MobileNetV2 students ---------------------------------------------------


@pytest.mark.parametrize('config', sorted(STUDENTS))
def test_student_configs_match_the_teacher(config):
    data_set, backbone, aux = STUDENTS[config]
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    student, teacher = resolve_model_cfg(cfg.model.student), resolve_model_cfg(cfg.model.teacher)
    assert student.backbone.type == backbone and teacher.backbone.depth == 101
    assert student.decode_head.num_classes == teacher.decode_head.num_classes == CLASSES[data_set]
    assert cfg.train_dataloader.dataset.type == ('CityscapesDataset' if data_set == 'cityscapes' else 'ADE20KDataset')
    assert tuple(student.data_preprocessor.size) == tuple(cfg.crop_size)  # the data's crop, not SegFormer's own
    assert ('aux' in cfg.model.distill_losses and cfg.model.distill_losses.aux is not None) == aux
    assert bool(student.get('auxiliary_head')) == aux
    assert cfg.model.distill_losses.decode.loss.type == 'GDKDLoss'
    if backbone == 'MixVisionTransformer':  # SegFormer's own optimiser, the schedule's length
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters


@pytest.mark.parametrize('config', [SEGFORMER, MOBILENET])
def test_stride4_student_meets_the_upsampled_stride8_teacher(tmp_path, cityscapes_teacher_ckpt, config):
    model = distiller(config, cityscapes_teacher_ckpt, tmp_path)
    inputs, samples = batch()
    losses = model(inputs, samples, mode='loss')
    zs = model.student_recorder['decode_head.conv_seg']
    zt = model.teacher(inputs)['decode_head.conv_seg']
    assert zs.shape[-2:] == (16, 32) and zt.shape[-2:] == (8, 16)  # 1/4 and 1/8 of 64x128
    gt = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    gdkd = model.distill_losses['decode']
    # the teacher is upsampled bilinearly to the student's size; the student is left as it is
    upsampled = F.interpolate(zt, size=zs.shape[-2:], mode='bilinear', align_corners=False)
    torch.testing.assert_close(losses['distill.decode.loss_gdkd'], gdkd(zs, upsampled, gt))
    assert not torch.allclose(gdkd(zs, upsampled, gt), gdkd(F.avg_pool2d(zs, 2), zt, gt))
    if config == MOBILENET:  # both auxiliary heads at 1/8
        assert model.student_recorder['auxiliary_head.conv_seg'].shape[-2:] == (8, 16)
        assert np.isfinite(float(losses['distill.aux.loss_gdkd']))
    else:
        assert not any(k.startswith('distill.aux') for k in losses)
    losses['distill.decode.loss_gdkd'].backward()
    first_conv = next(p for n, p in model.student.backbone.named_parameters() if p.dim() == 4)
    assert has_grad(first_conv) and has_grad(model.student.decode_head.conv_seg.weight)
    assert all(p.grad is None for p in model.teacher.model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize('config', [SEGFORMER, MOBILENET])
def test_stride4_student_trains_two_iterations(tmp_path, cityscapes_teacher_ckpt, config):
    data_root = write_cityscapes_tree(str(tmp_path / 'cityscapes'), size=(64, 128))
    cfg = shrink(config, data_root, cityscapes_teacher_ckpt, str(tmp_path / 'cfg.py'), crop=SIZE, scale=(128, 64))
    work = str(tmp_path / 'work')
    runner.train(cfg, work_dir=work)
    logged = scalars(work)
    train = [s for s in logged if 'distill.decode.loss_gdkd' in s]
    assert len(train) == 2 and all(np.isfinite(s['distill.decode.loss_gdkd']) for s in train)
    assert all(('distill.aux.loss_gdkd' in s) == (config == MOBILENET) for s in train)
    assert any('mIoU' in s for s in logged)
    assert osp.isfile(osp.join(work, 'iter_2.pth'))


# -- feature-only and block-wise KD from a ResNet teacher to a SegFormer student ------------------------------


def test_feature_only_kd_reaches_the_segformer_backbone_through_its_outputs(tmp_path, cityscapes_teacher_ckpt):
    model = distiller(FKD, cityscapes_teacher_ckpt, tmp_path)
    inputs, samples = batch()
    losses = model(inputs, samples, mode='loss')
    for i, size in enumerate([(16, 32), (8, 16), (4, 8), (2, 4)]):  # MiT stages at 1/4 .. 1/32
        assert model.student_recorder[f'backbone:{i}'].shape[-2:] == size
        assert np.isfinite(float(losses[f'distill.stage{i + 1}.loss_feat']))
    backbone = model.student.backbone
    losses['decode.loss_ce'].backward(retain_graph=True)
    assert has_grad(model.student.decode_head.conv_seg.weight)
    assert all(p.grad is None for p in backbone.parameters())  # the head trains on detached features
    sum(losses[f'distill.stage{i}.loss_feat'] for i in (1, 2, 3, 4)).backward()
    assert has_grad(backbone.layers[0][0].projection.weight) and has_grad(backbone.layers[3][0].projection.weight)
    assert all(has_grad(p) for p in model.connectors.parameters())
    assert all(p.grad is None for p in model.teacher.model.parameters())


def test_blockwise_kd_stones_run_the_resnet_teacher_on_segformer_stages(tmp_path, cityscapes_teacher_ckpt):
    model = distiller(BLOCKWISE, cityscapes_teacher_ckpt, tmp_path)
    stones = model.components['stepping_stones']
    assert stones.student_records == ['backbone:0', 'backbone:1', 'backbone:2']
    assert [(c.in_channels, c.out_channels) for c in stones.connectors.values()] == [(32, 256), (64, 512), (160, 1024)]
    inputs, samples = batch(size=(32, 64))
    with model.student_recorder.recording():  # the distiller's loss step, with its records kept
        model.student.loss(inputs, samples)
    records = model.collect_records(inputs, samples)
    losses = model.distill_loss(records, model.gt_labels(samples))
    teacher_logits = records.teacher['decode_head.conv_seg']
    assert [w for w, _ in records.components['stepping_stones']] == [0.125, 0.25, 0.5]
    assert all(z.shape == teacher_logits.shape for _, z in records.components['stepping_stones'])
    model.zero_grad()
    losses['distill.blockwise.loss_blockwise'].backward()
    assert all(has_grad(p) for n, p in stones.connectors.named_parameters() if 'conv' in n)
    backbone = model.student.backbone
    assert has_grad(backbone.layers[0][0].projection.weight) and has_grad(backbone.layers[2][0].projection.weight)
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.model.parameters())


def segformer(num_classes=3):
    student = small_model('mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py', SIZE)
    return resolve_model_cfg(merged(student, dict(decode_head=dict(num_classes=num_classes))))


def test_recording_mit_stages_explains_what_to_name():
    model = MODELS.build(segformer())
    with pytest.raises(ValueError, match=r"backbone\.layers\.3 is a ModuleList.*never called.*'backbone:<index>'"):
        ModuleOutputRecorder(model, ['backbone.layers.3'])
    with pytest.raises(ValueError, match=r"Cannot record 'backbone:x'"):
        ModuleOutputRecorder(model, ['backbone:x'])
    image = torch.randn(1, 3, 64, 64)
    recorder = ModuleOutputRecorder(model, ['backbone:3'])
    with recorder.recording():
        feats = model.extract_feat(image)
    assert recorder['backbone:3'] is feats[3] and feats[3].shape[1] == 256
    for name, error in (
        ('backbone:4', r"'backbone:4'.*outputs 4 elements.*0\.\.3"),
        ('decode_head.conv_seg:0', r'outputs a single Tensor.*without the index'),
    ):
        recorder = ModuleOutputRecorder(model, [name])
        with recorder.recording(), pytest.raises(RuntimeError, match=error):
            model.decode_head(model.extract_feat(image))
        recorder.remove()


def test_stepping_stones_need_teacher_stages_that_are_modules(tmp_path):
    teacher = MODELS.build(tiny_segmentor(3, width=16, aux=True))
    torch.save({'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')
    cfg = dict(
        type='SegDistiller',
        student=segformer(),
        teacher=tiny_segmentor(3, width=16, aux=True),
        teacher_checkpoint=str(tmp_path / 'teacher.pth'),
        components=dict(
            stepping_stones=dict(type='SteppingStones', stones=[2], teacher_stages=[f'backbone:{i}' for i in range(4)])
        ),
        distill_losses=dict(
            blockwise=dict(
                student='decode_head.conv_seg',
                teacher='decode_head.conv_seg',
                extra_inputs=dict(stones='stepping_stones'),
                loss=dict(type='BlockwiseKDLoss'),
            )
        ),
    )
    with pytest.raises(ValueError, match=r'teacher_stages \[.*backbone:0.*\] name outputs, not modules'):
        MODELS.build(cfg)
    cfg['components']['stepping_stones'] = dict(type='SteppingStones', stones=[2])
    model = MODELS.build(cfg)  # a tiny ResNet teacher: the student's MiT channels are probed
    assert [(c.in_channels, c.out_channels) for c in model.components['stepping_stones'].connectors.values()] == [
        (64, 32)
    ]
    assert model.student.training and all(m.training for m in model.student.modules())  # the probe left it as it was


# -- class counts ----------------------------------------------------------------------------------------------


def test_ade20k_student_with_a_cityscapes_teacher_is_refused():
    cfg = Config.fromfile(osp.join(CONFIGS, 'ade20k/gdkd_deeplabv3_r101_r18_ade20k.py'))
    cityscapes = Config.fromfile(SEGFORMER).model.teacher
    with pytest.raises(ValueError, match=r'student predicts 150 classes and the teacher 19(.|\n)*num_classes'):
        MODELS.build(dict(cfg.model, teacher=cityscapes))


def test_ade20k_student_on_cityscapes_data_is_refused():
    from gdkd_seg.datasets.checks import check_model_fits_data

    student = MODELS.build(resolve_model_cfg('mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py'))
    cityscapes = Config.fromfile(SEGFORMER)
    with pytest.raises(
        ValueError,
        match=r'train_dataloader: CityscapesDataset has 19 classes but the model predicts '
        r'150(.|\n)*num_classes=19',
    ):
        check_model_fits_data(cityscapes, student)
