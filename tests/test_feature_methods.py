"""Feature-level methods: block-wise logit distillation (stepping stones), feature-only KD, knowledge quality."""

import copy
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers import runner_cfg, seg_batch, tiny_segmentor, write_seg_folder
from mmengine.config import Config
from mmseg.registry import MODELS

import gdkd_seg  # noqa: F401
from gdkd_seg.analysis import knowledge_quality, sample_labelled_positions
from gdkd_seg.losses import BlockwiseKDLoss, FeatureKDLoss, KDLoss
from gdkd_seg.models import detach_head_input

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))


def blockwise(stones=(1, 2, 3), **loss):
    """The block-wise KD part of a SegDistiller config: the stones component and the loss reading it."""
    return dict(
        components=dict(stepping_stones=dict(type='SteppingStones', stones=list(stones))),
        distill_losses=dict(
            blockwise=dict(
                student='decode_head.conv_seg',
                teacher='decode_head.conv_seg',
                extra_inputs=dict(stones='stepping_stones'),
                loss=dict(type='BlockwiseKDLoss', **loss),
            )
        ),
    )


def feature_only(detach=True):
    return dict(
        detach_head_input=detach,
        distill_losses={
            f'layer{i}': dict(
                student=f'backbone.layer{i}',
                teacher=f'backbone.layer{i}',
                connector=dict(type='FeatureProjector', in_channels=8 * 2 ** (i - 1), out_channels=16 * 2 ** (i - 1)),
                loss=dict(type='FeatureKDLoss', loss_weight=1.0),
            )
            for i in (3, 4)
        },
    )


def distiller_cfg(teacher_ckpt, method, student=None, teacher=None):
    return dict(
        type='SegDistiller',
        student=student or tiny_segmentor(3, width=8, aux=True),
        teacher=teacher or tiny_segmentor(3, width=16, aux=True),
        teacher_checkpoint=str(teacher_ckpt),
        **method,
    )


def distiller(teacher_ckpt, method, student=None):
    model = MODELS.build(distiller_cfg(teacher_ckpt, method, student))
    model.init_weights()
    return model.train()


def stone_logits(model, inputs, samples):
    """The stones' logits after a student forward, as the distiller computes them in a training step."""
    with model.student_recorder.recording():
        model.student.loss(inputs, samples)
    return model.collect_records(inputs, samples)


def grads(module):
    return {name: p.grad for name, p in module.named_parameters()}


def has_grad(grad):
    return grad is not None and grad.abs().sum() > 0


# -- stepping stones -----------------------------------------------------------------------------------


def test_stepping_stones_give_teacher_shaped_logits(teacher_ckpt):
    model = distiller(teacher_ckpt, blockwise(stones=(1, 2, 3, 4)))
    stones = model.components['stepping_stones']
    records = stone_logits(model, *seg_batch(ignored_rows=4))
    teacher_logits = records.teacher['decode_head.conv_seg']
    out = records.components['stepping_stones']
    assert [w for w, _ in out] == [0.125, 0.25, 0.5, 1.0] and stones.stone_weights == {
        1: 0.125,
        2: 0.25,
        3: 0.5,
        4: 1.0,
    }
    assert all(z.shape == teacher_logits.shape for _, z in out)
    # The stones are separate networks: different connectors give different logits.
    assert not torch.allclose(out[0][1], out[3][1])


def test_stone_gradients_reach_connectors_and_student_not_teacher(teacher_ckpt):
    # beta = gamma = 0: only the stones' task loss, which never passes the student's own head.
    model = distiller(teacher_ckpt, blockwise(stones=(1, 3), alpha=1.0, beta=0.0, gamma=0.0))
    teacher = model.teacher.model
    before = copy.deepcopy(teacher.state_dict())
    inputs, samples = seg_batch(ignored_rows=4)
    losses = model(inputs, samples, mode='loss')
    losses['distill.blockwise.loss_blockwise'].backward()

    connectors = grads(model.components['stepping_stones'].connectors)
    assert connectors and all(has_grad(g) for g in connectors.values())  # stone 1 through teacher stages 2-4
    student = grads(model.student)
    # (the residual blocks' last BN starts at 0, so test the stem and the shortcut convolutions)
    assert has_grad(student['backbone.stem.0.weight']) and has_grad(student['backbone.layer3.0.downsample.0.weight'])
    # beta * KD and gamma * cross keep the student's head in the graph, with zero weight
    assert not has_grad(student['backbone.layer4.0.downsample.0.weight'])  # no stone uses the student's stage 4
    assert not has_grad(student['decode_head.conv_seg.weight'])
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())  # BN statistics too
    assert not any('teacher' in k or k.startswith('components.stepping_stones._') for k in model.state_dict())


def test_blockwise_loss_logs_terms_and_student_gets_kd_gradient(teacher_ckpt):
    model = distiller(teacher_ckpt, blockwise())
    inputs, samples = seg_batch(ignored_rows=4)
    losses = model(inputs, samples, mode='loss')
    terms = [losses[f'distill.blockwise.blockwise_{t}'] for t in ('task', 'kd', 'cross')]
    assert torch.allclose(sum(terms), losses['distill.blockwise.loss_blockwise'].detach())
    losses['distill.blockwise.loss_blockwise'].backward()
    assert has_grad(model.student.decode_head.conv_seg.weight.grad)  # the student's KD and cross terms


def test_stones_leave_the_teacher_outputs_of_other_losses_alone(teacher_ckpt):
    # The stones run the teacher's decode head again (with the teacher's recorder hooks on it); a loss
    # declared after them must still see the teacher's own logits.
    method = blockwise()
    method['distill_losses']['kd'] = dict(
        student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(type='KDLoss', temperature=1.0)
    )
    model = distiller(teacher_ckpt, method)
    inputs, samples = seg_batch(ignored_rows=4)
    losses = model(inputs, samples, mode='loss')
    student_logits = model.student_recorder['decode_head.conv_seg']
    teacher_logits = model.teacher(inputs)['decode_head.conv_seg']
    gt = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    assert torch.allclose(losses['distill.kd.loss_kd'], KDLoss()(student_logits, teacher_logits, gt))


def test_blockwise_loss_formula():
    torch.manual_seed(0)
    zs, zt = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    stones = {2: torch.randn(2, 4, 6, 6), 3: torch.randn(2, 4, 6, 6)}
    gt = torch.randint(0, 4, (2, 24, 24))
    gt[0, :5] = 255
    loss = BlockwiseKDLoss(alpha=0.5, beta=2.0, gamma=3.0, temperature=2.0, loss_weight=0.7)
    terms = loss.forward_terms(zs, zt, gt, stones=[(0.25, stones[2]), (0.5, stones[3])])

    kd = KDLoss(temperature=2.0)
    w = {2: 0.25, 3: 0.5}
    mean = (stones[2] + stones[3]) / 2

    def ce(z):
        return F.cross_entropy(
            F.interpolate(z, size=(24, 24), mode='bilinear', align_corners=False), gt, ignore_index=255
        )

    expected = dict(
        task=0.5 * sum(w[i] * ce(z) for i, z in stones.items()),
        kd=2.0 * (kd(zs, zt, gt) + sum(w[i] * kd(z, zt, gt) for i, z in stones.items())),
        cross=3.0 * (kd(zs, mean, gt) + sum(w[i] * kd(z, mean, gt) for i, z in stones.items())),
    )
    for name, value in expected.items():
        assert torch.allclose(terms[name], 0.7 * value, atol=1e-6), name


def test_stepping_stones_resize_when_strides_differ(teacher_ckpt):
    student = tiny_segmentor(3, width=8, aux=True)
    student.backbone.update(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2))  # stages 3-4 at 1/16, teacher 1/8
    model = distiller(teacher_ckpt, blockwise(stones=(2, 3)), student=student)
    records = stone_logits(model, *seg_batch(ignored_rows=4))
    assert records.student['backbone.layer3'].shape[-1] == 2
    teacher_logits = records.teacher['decode_head.conv_seg']
    assert teacher_logits.shape[-1] == 4
    assert all(z.shape == teacher_logits.shape for _, z in records.components['stepping_stones'])


def test_stepping_stone_errors_name_the_problem(teacher_ckpt):
    with pytest.raises(ValueError, match=r'stones \[5\] do not exist.*1\.\.4'):
        distiller(teacher_ckpt, blockwise(stones=(3, 5)))
    with pytest.raises(ValueError, match='non-empty list'):
        distiller(teacher_ckpt, blockwise(stones=()))
    shallow_head = tiny_segmentor(3, width=16, aux=True)
    shallow_head.decode_head.update(in_index=1, in_channels=32)  # the head reads stage 2
    with pytest.raises(ValueError, match=r'reads stages \[2\].*stones \[3\]'):
        MODELS.build(distiller_cfg(teacher_ckpt, blockwise(stones=(3,)), teacher=shallow_head))
    with pytest.raises(ValueError, match=r"stepping stones' logits: declare components"):
        BlockwiseKDLoss()(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


# -- feature-only KD -----------------------------------------------------------------------------------


@pytest.mark.parametrize('detach', [True, False])
def test_feature_only_kd_backbone_learns_from_features_alone(teacher_ckpt, detach):
    model = distiller(teacher_ckpt, feature_only(detach))
    inputs, samples = seg_batch(ignored_rows=4)
    losses = model(inputs, samples, mode='loss')
    (losses['decode.loss_ce'] + losses['aux.loss_ce']).backward(retain_graph=True)
    student = grads(model.student)
    backbone = {k: g for k, g in student.items() if k.startswith('backbone.')}
    assert has_grad(student['decode_head.conv_seg.weight']) and has_grad(student['auxiliary_head.convs.0.conv.weight'])
    if detach:
        assert all(g is None for g in backbone.values())  # no task-loss gradient reaches the backbone
    else:
        assert has_grad(backbone['backbone.stem.0.weight'])  # control: it does without the option
        return

    model.zero_grad()
    sum(losses[f'distill.layer{i}.loss_feat'] for i in (3, 4)).backward()
    student = grads(model.student)
    assert has_grad(student['backbone.stem.0.weight']) and has_grad(student['backbone.layer4.0.downsample.0.weight'])
    assert student['decode_head.conv_seg.weight'] is None
    assert all(has_grad(g) for g in grads(model.connectors).values())
    assert all(p.grad is None for p in model.teacher.model.parameters())


def test_detach_head_input_is_idempotent_and_removable():
    model = MODELS.build(tiny_segmentor(3, width=8))
    handle = detach_head_input(model)
    assert detach_head_input(model) is None
    inputs = torch.randn(1, 3, 32, 32, requires_grad=True)
    assert not any(f.requires_grad for f in model.extract_feat(inputs))
    handle.remove()
    assert all(f.requires_grad for f in model.extract_feat(inputs))
    assert detach_head_input(model) is not None


def test_feature_kd_loss_pools_the_larger_map():
    loss = FeatureKDLoss(loss_weight=2.0)
    student, teacher = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 16, 16)
    expected = 2.0 * F.mse_loss(student, F.avg_pool2d(teacher, 2))
    assert torch.allclose(loss(student, teacher), expected)
    assert torch.allclose(loss(teacher, student), 2.0 * F.mse_loss(F.avg_pool2d(teacher, 2), student))
    with pytest.raises(ValueError, match=r"FeatureProjector', in_channels=4, out_channels=6"):
        loss(student, torch.randn(2, 6, 8, 8))
    with pytest.raises(ValueError, match='neither map'):
        loss(torch.randn(2, 4, 8, 16), torch.randn(2, 4, 16, 8))


# -- knowledge quality ---------------------------------------------------------------------------------


def layer_features(generator, separable, num_classes=4, per_class=60, dim=64, noise=0.5):
    """ReLU features around one mean per cluster; a separable layer puts each class in its own cluster,
    a random one draws the cluster independently of the class (same feature distribution)."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    means = torch.randn(num_classes, dim, generator=generator)
    cluster = labels if separable else torch.randint(0, num_classes, labels.shape, generator=generator)
    feats = (means[cluster] + noise * torch.randn(labels.numel(), dim, generator=generator)).relu()
    return feats, labels


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_knowledge_quality_ranks_separable_features_above_random(seed):
    g = torch.Generator().manual_seed(seed)
    separable = knowledge_quality(*layer_features(g, separable=True))
    random = knowledge_quality(*layer_features(g, separable=False))
    assert separable.quality > random.quality
    assert separable.separation > 0.3 and abs(random.separation) < 0.05
    assert separable.efficiency > random.efficiency
    assert 0 <= random.information <= 1 and 0 <= separable.information <= 1
    q = separable
    assert q.quality == pytest.approx(q.separation + (q.information * q.efficiency) ** 0.5)


def test_knowledge_quality_needs_two_classes():
    with pytest.raises(ValueError, match='at least 2 classes'):
        knowledge_quality(torch.randn(10, 4), torch.zeros(10, dtype=torch.long))


def test_sample_labelled_positions_per_class_and_ignore():
    feats = torch.arange(2 * 3 * 4 * 4, dtype=torch.float).reshape(2, 3, 4, 4)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[:, :4] = 1
    labels[0, :, :2] = 255
    rows, ys = sample_labelled_positions(feats, labels, per_class=5, generator=torch.Generator().manual_seed(0))
    assert rows.shape == (10, 3) and sorted(ys.tolist()) == [0] * 5 + [1] * 5
    # each row is the feature vector of a position whose (nearest-resized) label it carries
    small = labels[:, ::2, ::2].flatten()
    all_rows = feats.permute(0, 2, 3, 1).reshape(-1, 3)
    for row, y in zip(rows, ys):
        position = (all_rows == row).all(1).nonzero()[0, 0]
        assert small[position] == y != 255


def test_rank_teacher_layers_tool(tmp_path, teacher_ckpt):
    import rank_teacher_layers  # tools/

    root = write_seg_folder(str(tmp_path / 'data'), n_train=3)
    cfg = runner_cfg(tmp_path / 'work', root, tiny_segmentor(3, width=16, aux=True))
    cfg.dump(str(tmp_path / 'teacher.py'))
    out = tmp_path / 'rank'
    rows = rank_teacher_layers.main(
        [
            str(tmp_path / 'teacher.py'),
            str(teacher_ckpt),
            '--num-images',
            '2',
            '--per-class',
            '30',
            '--out-dir',
            str(out),
            '--top-k',
            '1',
        ]
    )
    assert [r['layer'] for r in rows] == [f'backbone.layer{i}' for i in (1, 2, 3, 4)]
    assert [r['channels'] for r in rows] == [16, 32, 64, 128]
    assert all(r['num_classes'] == 3 for r in rows)
    saved = __import__('json').load(open(out / 'quality.json'))
    assert saved['suggested'] == [max(rows, key=lambda r: r['quality'])['layer']]
    assert (out / 'quality.png').stat().st_size > 0


# -- training and export -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('method', ['blockwise', 'feature'])
def test_export_gives_plain_student_with_identical_predictions(tmp_path, teacher_ckpt, method):
    from mmengine.runner import Runner
    from mmseg.apis import inference_model, init_model

    from gdkd_seg.export import export_student

    root = write_seg_folder(str(tmp_path / 'data'))
    model = distiller_cfg(teacher_ckpt, blockwise() if method == 'blockwise' else feature_only())
    cfg = runner_cfg(tmp_path / 'work', root, model, max_iters=2, val=False)
    cfg.custom_imports = dict(imports=['gdkd_seg'])
    cfg.test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]  # for inference_model
    config = str(tmp_path / f'{method}.py')
    cfg.dump(config)
    runner = Runner.from_cfg(Config.fromfile(config))
    runner.train()
    ckpt = str(tmp_path / 'work' / 'iter_2.pth')
    state = torch.load(ckpt, weights_only=False)['state_dict']
    trained = [k for k in state if not k.startswith('student.')]
    assert trained and all(k.startswith(('components.', 'connectors.')) for k in trained)

    weights, student_cfg = export_student(config, ckpt, str(tmp_path / 'student.pth'))
    exported = Config.fromfile(student_cfg)
    assert exported.model.type == 'EncoderDecoder'
    exported_state = torch.load(weights, weights_only=False)['state_dict']
    assert sorted(exported_state) == sorted(MODELS.build(exported.model).state_dict())
    plain = init_model(student_cfg, weights, device='cpu')

    distiller_model = runner.model.eval()
    distiller_model.cfg = Config.fromfile(config)
    image = osp.join(root, 'img_dir', 'val', '000.png')
    ours = inference_model(distiller_model, image).seg_logits.data
    theirs = inference_model(plain, image).seg_logits.data
    assert torch.equal(ours, theirs)
