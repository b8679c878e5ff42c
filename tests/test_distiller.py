"""SegDistiller with small models: frozen teacher, losses, checkpoints, teacher-checkpoint errors."""

import pytest
import torch
from helpers import runner_cfg, seg_batch, tiny_segmentor, write_seg_folder
from mmengine.runner import Runner
from mmseg.registry import MODELS

import gdkd_seg  # noqa: F401
from gdkd_seg.models import TeacherCheckpointError

GDKD = dict(type='GDKDLoss', topk=1, w0=1.0, w1=1.0, w2=2.0)


def distiller_cfg(teacher_checkpoint, num_classes=3, losses=None):
    return dict(
        type='SegDistiller',
        student=tiny_segmentor(num_classes, width=8, aux=True),
        teacher=tiny_segmentor(num_classes, width=16, aux=True),
        teacher_checkpoint=str(teacher_checkpoint),
        distill_losses=losses
        or dict(
            decode=dict(
                student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(GDKD, loss_weight=1.0)
            ),
            aux=dict(
                student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg', loss=dict(GDKD, loss_weight=0.4)
            ),
        ),
    )


def test_teacher_frozen_hidden_and_loaded(teacher_ckpt):
    model = MODELS.build(distiller_cfg(teacher_ckpt))
    model.init_weights()
    model.train()
    teacher = model.teacher.model
    assert not teacher.training and all(not m.training for m in teacher.modules())
    assert all(not p.requires_grad for p in teacher.parameters())
    own = {id(p) for p in model.parameters()}
    assert not own & {id(p) for p in teacher.parameters()}
    assert not any(k.startswith('teacher') for k in model.state_dict())
    saved = torch.load(teacher_ckpt)['state_dict']
    assert all(torch.equal(v, saved[k]) for k, v in teacher.state_dict().items())

    inputs, samples = seg_batch()
    running_mean = teacher.backbone.layer1[0].bn1.running_mean.clone()
    losses = model(inputs, samples, mode='loss')
    assert torch.equal(teacher.backbone.layer1[0].bn1.running_mean, running_mean)  # BN statistics fixed
    for key in (
        'decode.loss_ce',
        'aux.loss_ce',
        'distill.decode.loss_gdkd',
        'distill.aux.loss_gdkd',
        'distill.decode.gdkd_high',
        'distill.decode.gdkd_top',
        'distill.decode.gdkd_other',
    ):
        assert key in losses, key
    terms = sum(losses[f'distill.decode.gdkd_{t}'] for t in ('high', 'top', 'other'))
    assert torch.allclose(terms, losses['distill.decode.loss_gdkd'].detach())
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.student.decode_head.conv_seg.weight.grad.abs().sum() > 0


def test_predict_is_the_students(teacher_ckpt):
    model = MODELS.build(distiller_cfg(teacher_ckpt)).eval()
    model.init_weights()
    inputs, samples = seg_batch(1)
    ours = model(inputs, samples, mode='predict')[0].seg_logits.data
    plain = model.student.predict(inputs, samples)[0].seg_logits.data
    assert torch.equal(ours, plain)


def test_distill_scale_scales_every_distillation_term(teacher_ckpt):
    model = MODELS.build(distiller_cfg(teacher_ckpt))
    model.init_weights()
    inputs, samples = seg_batch()
    torch.manual_seed(1)
    full = model(inputs, samples, mode='loss')
    model.distill_scale = 0.25
    torch.manual_seed(1)
    quarter = model(inputs, samples, mode='loss')
    assert torch.allclose(quarter['distill.decode.loss_gdkd'], 0.25 * full['distill.decode.loss_gdkd'])
    assert torch.allclose(quarter['decode.loss_ce'], full['decode.loss_ce'])


def test_missing_teacher_checkpoint_is_a_clear_error(tmp_path):
    model = MODELS.build(distiller_cfg(tmp_path / 'missing.pth'))
    with pytest.raises(TeacherCheckpointError, match=r'missing\.pth.*--cfg-options model\.teacher_checkpoint'):
        model.init_weights()


def test_unreachable_teacher_url_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    model = MODELS.build(distiller_cfg('http://127.0.0.1:9/teacher.pth'))
    with pytest.raises(TeacherCheckpointError, match=r'download.*--cfg-options model\.teacher_checkpoint=PATH'):
        model.init_weights()


def test_class_count_mismatch_names_the_shapes(tmp_path):
    other = MODELS.build(tiny_segmentor(5, width=16, aux=True))
    path = tmp_path / 'five_classes.pth'
    torch.save({'state_dict': other.state_dict()}, path)
    model = MODELS.build(distiller_cfg(path))
    with pytest.raises(
        TeacherCheckpointError,
        match=r'decode_head\.conv_seg\.weight: checkpoint \[5, 16, 1, 1\] vs config \[3, 16, 1, 1\]'
        r'(.|\n)*predicts 5 classes, the teacher config 3',
    ):
        model.init_weights()


def test_student_and_teacher_class_counts_must_match(teacher_ckpt):
    cfg = distiller_cfg(teacher_ckpt)
    cfg['student'] = tiny_segmentor(5, width=8, aux=True)
    with pytest.raises(ValueError, match=r'student predicts 5 classes and the teacher 3(.|\n)*num_classes'):
        MODELS.build(cfg)


def test_unknown_module_name_lists_candidates(teacher_ckpt):
    cfg = distiller_cfg(
        teacher_ckpt, losses=dict(x=dict(student='decode_head.conv_segg', teacher='decode_head.conv_seg', loss=GDKD))
    )
    with pytest.raises(KeyError, match=r'conv_segg.*decode_head\.conv_seg'):
        MODELS.build(cfg)


def test_a_list_of_losses_gets_the_dict_form_in_the_error(teacher_ckpt):
    cfg = distiller_cfg(
        teacher_ckpt,
        losses=[
            dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=GDKD),
            dict(name='aux', student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg', loss=GDKD),
        ],
    )
    with pytest.raises(
        ValueError,
        match=r'is a list; it is a dict keyed by name(.|\n)*distill_losses=dict\(\n'
        r"        decode=dict\(student='decode_head\.conv_seg', "
        r"teacher='decode_head\.conv_seg', loss=dict\(type='GDKDLoss', topk=1"
        r"(.|\n)*\n        aux=dict\(student='auxiliary_head",
    ):
        MODELS.build(cfg)


def test_declarations_merge_by_name_and_none_drops_one(tmp_path, teacher_ckpt):
    from mmengine.config import Config

    base = tmp_path / 'base.py'
    Config(dict(model=distiller_cfg(teacher_ckpt))).dump(str(base))
    child = tmp_path / 'child.py'
    child.write_text(
        f'_base_ = {str(base)!r}\nmodel = dict(distill_losses=dict(decode=dict(loss=dict(topk=2)), aux=None))\n'
    )
    cfg = Config.fromfile(str(child))
    cfg.merge_from_dict({'model.distill_losses.decode.loss.w2': 4.0})
    model = MODELS.build(cfg.model)
    assert list(model.distill_losses) == ['decode']
    loss = model.distill_losses['decode']
    assert (loss.topk, loss.w2, loss.w0) == (2, 4.0, 1.0)  # merged into the base's GDKD declaration
    assert model.student_recorder.names == ['decode_head.conv_seg']


def test_declaration_typos_are_named(teacher_ckpt):
    bad = dict(
        decode=dict(
            student='decode_head.conv_seg',
            teacher='decode_head.conv_seg',
            loss=GDKD,
            conector=dict(type='FeatureProjector', in_channels=3, out_channels=3),
        )
    )
    with pytest.raises(ValueError, match=r"distill_losses\.decode: unknown keys \['conector'\]"):
        MODELS.build(distiller_cfg(teacher_ckpt, losses=bad))
    missing = dict(decode=dict(student='decode_head.conv_seg', loss=GDKD))
    with pytest.raises(ValueError, match=r"distill_losses\.decode: missing \['teacher'\]"):
        MODELS.build(distiller_cfg(teacher_ckpt, losses=missing))
    extra = dict(
        decode=dict(
            student='decode_head.conv_seg',
            teacher='decode_head.conv_seg',
            loss=GDKD,
            extra_inputs=dict(stones='stepping_stones'),
        )
    )
    with pytest.raises(ValueError, match=r"extra_inputs name components \['stepping_stones'\]"):
        MODELS.build(distiller_cfg(teacher_ckpt, losses=extra))


def test_runner_never_optimizes_or_saves_the_teacher(tmp_path, teacher_ckpt):
    root = write_seg_folder(str(tmp_path / 'data'))
    cfg = runner_cfg(tmp_path / 'work', root, distiller_cfg(teacher_ckpt), max_iters=2)
    cfg['custom_hooks'] = [dict(type='DistillWarmupHook', warmup_iters=4)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    optimized = {id(p) for group in runner.optim_wrapper.optimizer.param_groups for p in group['params']}
    assert not optimized & {id(p) for p in runner.model.teacher.model.parameters()}
    assert runner.model.distill_scale == pytest.approx(0.5)  # 2 of 4 warm-up iterations
    ckpt = torch.load(tmp_path / 'work' / 'iter_2.pth', weights_only=False)
    assert ckpt['state_dict'] and not any(k.startswith('teacher') for k in ckpt['state_dict'])


def test_model_and_dataset_class_counts_must_match(tmp_path):
    from gdkd_seg.runner import build_runner

    root = write_seg_folder(str(tmp_path / 'data'))  # 3 classes
    with pytest.raises(
        ValueError,
        match=r'train_dataloader: BaseSegDataset has 3 classes but the model predicts 5'
        r'(.|\n)*num_classes=3',
    ):
        build_runner(runner_cfg(tmp_path / 'w', root, tiny_segmentor(5)))
    assert build_runner(runner_cfg(tmp_path / 'w3', root, tiny_segmentor(3))).model is not None
