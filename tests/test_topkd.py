"""TopKD: the Top-K Scaling Module (TSM), the Top-K Decoupled Loss with its
batch contrastive term, and TSM inside KD / DKD / GDKD.

The references below are written from the formulas with explicit loops on
float64 rows; the valid-row extraction (nearest labels, bilinear teacher) is
the one of ``test_losses.py``.
"""

import math

import pytest
import torch
from helpers import IGNORE, random_batch, ref_softmax, ref_valid_rows
from mmseg.registry import MODELS

import gdkd_seg.losses  # noqa: F401  (registers the losses)
import gdkd_seg.losses.topkd_loss as topkd_module
from gdkd_seg.losses import DKDLoss, GDKDLoss, KDLoss, TopKDLoss, TopKScaling, rank_scales

TSM = dict(k=2, scale_schedule='linear', max_scale=1.8, min_scale=1.2, gt_scale=2.5, delta_coef=0.3)


pytestmark = pytest.mark.usefixtures('single_thread')  # tiny tensors (conftest.py)


# ----------------------------------------------------------------------------
# float64 references, from the formulas
# ----------------------------------------------------------------------------
def descending(z):
    return [int(i) for i in torch.argsort(z, descending=True)]


def ref_scales(k, schedule, max_scale, min_scale):
    if k == 1 or schedule == 'constant':
        return [max_scale] * k
    if schedule == 'linear':
        step = (max_scale - min_scale) / (k - 1)
        return [max_scale - r * step for r in range(k)]
    ratio = (min_scale / max_scale) ** (1 / (k - 1))
    return [max_scale * ratio**r for r in range(k)]


def ref_tsm(z, label, k, scale_schedule, max_scale, min_scale, gt_scale, delta_coef):
    order = descending(z)
    top, rest = order[:k], order[k:]
    delta = delta_coef * (sum(float(z[i]) for i in top) / len(top) - sum(float(z[i]) for i in rest) / len(rest))
    scales = ref_scales(k, scale_schedule, max_scale, min_scale)
    out = z.clone()
    for rank, i in enumerate(top):
        out[i] = scales[rank] * z[i] + delta
    if label is not None and label != IGNORE and label != order[0]:
        out[label] = gt_scale * z[label] + delta
    return out


def ref_cos(a, b):
    dot = sum(float(x) * float(y) for x, y in zip(a, b))
    na = math.sqrt(sum(float(x) ** 2 for x in a))
    nb = math.sqrt(sum(float(y) ** 2 for y in b))
    return dot / (na * nb)


def ref_tdl(zs, zt, k, alpha, beta):
    order = descending(zt)
    pos, neg, non = order[:k], order[-k:], order[k : len(order) - k]
    terms = dict(pos=alpha * (1 - ref_cos(zs[pos], zt[pos])), neg=beta * (1 - ref_cos(zs[neg], zt[neg])))
    terms['non'] = 1 - ref_cos(zs[non], zt[non]) if non else 0.0
    return terms


def ref_contrast(rows_s, rows_t, tau):
    B = len(rows_s)
    sim = [[ref_cos(rows_s[i], rows_t[j]) / tau for j in range(B)] for i in range(B)]
    s2t = -sum(math.log(float(ref_softmax(torch.tensor(sim[i], dtype=torch.float64))[i])) for i in range(B)) / B
    t2s = (
        -sum(
            math.log(float(ref_softmax(torch.tensor([sim[i][j] for i in range(B)], dtype=torch.float64))[j]))
            for j in range(B)
        )
        / B
    )
    return (s2t + t2s) / 2


def ref_topkd(student, teacher, gt, resize_mode, topk, alpha, beta, contrast_weight, tau, tsm, loss_weight):
    rows = ref_valid_rows(student, teacher, gt, resize_mode)
    rows = [(s, t if tsm is None else ref_tsm(t, y, **tsm), y) for s, t, y in rows]
    total = dict(pos=0.0, neg=0.0, non=0.0)
    for s, t, _ in rows:
        for name, value in ref_tdl(s, t, topk, alpha, beta).items():
            total[name] += value
    out = {k: loss_weight * v / len(rows) for k, v in total.items()}
    out['contrast'] = loss_weight * contrast_weight * ref_contrast([r[0] for r in rows], [r[1] for r in rows], tau)
    return out


# ----------------------------------------------------------------------------
# TSM
# ----------------------------------------------------------------------------
def test_rank_scales_schedules():
    assert rank_scales(4, 'linear', 2.0, 1.0) == pytest.approx((2.0, 5 / 3, 4 / 3, 1.0))
    assert rank_scales(3, 'geometric', 4.0, 1.0) == pytest.approx((4.0, 2.0, 1.0))
    assert rank_scales(3, 'constant', 1.5, 1.0) == (1.5, 1.5, 1.5)
    assert rank_scales(1, 'linear', 1.5, 1.0) == (1.5,)
    assert rank_scales(2, [3, 0.5], 1.5, 1.0) == (3.0, 0.5)


@pytest.mark.parametrize('schedule', ['linear', 'geometric', 'constant'])
def test_tsm_matches_reference(schedule):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 7, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 7, (40,), generator=g)
    labels[::5] = IGNORE
    cfg = dict(TSM, k=3, scale_schedule=schedule)
    out = TopKScaling(**cfg)(z, labels)
    for p in range(40):
        expected = ref_tsm(z[p], int(labels[p]), **cfg)
        assert torch.allclose(out[p], expected, rtol=1e-12, atol=1e-12), p
    # the ground-truth scale is used somewhere (a wrong top-1) and not always
    wrong = (z.argmax(1) != labels) & (labels != IGNORE)
    assert 0 < int(wrong.sum()) < 40


def test_tsm_leaves_other_logits_untouched():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 9, 3, 4, generator=g)
    labels = torch.randint(0, 9, (2, 3, 4), generator=g)
    out = TopKScaling(**dict(TSM, k=3))(z, labels)
    top = torch.zeros_like(z, dtype=torch.bool).scatter(1, z.topk(3, dim=1).indices, True)
    gt = torch.zeros_like(top).scatter(1, labels[:, None], True)
    gt &= (z.argmax(1) != labels)[:, None]
    touched = top | gt
    assert torch.equal(out[~touched], z[~touched])
    assert not torch.isclose(out[touched], z[touched]).any()


def test_tsm_is_identity_at_unit_scales_and_zero_shift():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 6, 5, 5, generator=g)
    labels = torch.randint(0, 6, (2, 5, 5), generator=g)
    tsm = TopKScaling(k=4, scale_schedule='constant', max_scale=1.0, min_scale=1.0, gt_scale=1.0, delta_coef=0.0)
    assert torch.equal(tsm(z, labels), z)
    assert torch.equal(
        tsm(z.flatten(2).transpose(1, 2).reshape(-1, 6), labels.reshape(-1)),
        z.flatten(2).transpose(1, 2).reshape(-1, 6),
    )


def test_tsm_maps_equal_rows_and_ignore_gets_no_gt_scale():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 5, 3, 4, generator=g)
    labels = torch.randint(0, 5, (2, 3, 4), generator=g)
    tsm = TopKScaling(**TSM)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 5)
    out_rows = tsm(rows, labels.reshape(-1))
    out_maps = tsm(z, labels).permute(0, 2, 3, 1).reshape(-1, 5)
    assert torch.equal(out_rows, out_maps)
    ignored = torch.full_like(labels.reshape(-1), IGNORE)
    assert torch.equal(tsm(rows, ignored), tsm(rows))
    assert not torch.equal(tsm(rows, labels.reshape(-1)), tsm(rows))


def test_tsm_gradcheck():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (6,), generator=g)
    tsm = TopKScaling(**TSM)
    assert torch.autograd.gradcheck(lambda x: tsm(x, labels), (z,))


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(k=0), r'k must be an integer >= 1, got 0'),
        (dict(k=True), r'k must be an integer >= 1, got True'),
        (dict(k=2.0), r'k must be an integer >= 1, got 2\.0'),
        (dict(max_scale=0), r'max_scale must be > 0, got 0'),
        (dict(min_scale=-1.0), r'min_scale must be > 0, got -1\.0'),
        (dict(gt_scale=0.0), r'gt_scale must be > 0, got 0\.0'),
        (dict(max_scale=1.0, min_scale=2.0), r'must not grow with the rank.*min_scale=2\.0 > max_scale=1\.0'),
        (dict(delta_coef=-0.1), r'delta_coef must be >= 0, got -0\.1'),
        (
            dict(scale_schedule='cosine'),
            r"scale_schedule must be one of \('linear', 'geometric', 'constant'\)"
            r".*got 'cosine'",
        ),
        (dict(k=3, scale_schedule=[2.0, 1.0]), r'must hold k=3 positive numbers.*\[2\.0, 1\.0\]'),
        (dict(k=2, scale_schedule=[2.0, 0.0]), r'must hold k=2 positive'),
    ],
)
def test_tsm_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TopKScaling(**kwargs)


def test_tsm_input_errors():
    tsm = TopKScaling(k=3)
    with pytest.raises(ValueError, match=r'needs k < C, got k=3.*\(4, 3\)'):
        tsm(torch.randn(4, 3))
    with pytest.raises(
        ValueError,
        match=r'labels must lie in \[0, 5\) '
        r'outside ignore_index=255, got 7',
    ):
        tsm(torch.randn(4, 5), torch.tensor([0, 1, 7, 255]))
    with pytest.raises(ValueError, match=r'needs \(P,\) labels.*\(4, 5\)'):
        tsm(torch.randn(4, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r'needs \(N, H, W\) labels'):
        tsm(torch.randn(2, 5, 3, 3), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(
        ValueError,
        match=r'\(P, C\) or \(N, C, H, W\).*'
        r'\(2, 5, 3\)',
    ):
        tsm(torch.randn(2, 5, 3))


# ----------------------------------------------------------------------------
# TopKD loss
# ----------------------------------------------------------------------------
TOPKD = dict(topk=2, alpha=1.7, beta=0.6, contrast_weight=0.4, tau=0.3, contrast_pixels=None, loss_weight=0.8)


@pytest.mark.parametrize('resize_mode', ['logits', 'label'])
@pytest.mark.parametrize('tsm', [None, TSM], ids=['raw', 'tsm'])
def test_topkd_matches_reference(resize_mode, tsm):
    label_hw = (7, 9) if resize_mode == 'logits' else (6, 7)
    student, teacher, gt = random_batch(0, label_hw=label_hw)
    loss = TopKDLoss(**TOPKD, teacher_scaling=tsm, resize_mode=resize_mode)
    terms = loss.forward_terms(student, teacher, gt)
    ref_kwargs = {k: v for k, v in TOPKD.items() if k != 'contrast_pixels'}
    expected = ref_topkd(student, teacher, gt, resize_mode, tsm=tsm, **ref_kwargs)
    assert set(terms) == set(expected) == {'pos', 'neg', 'non', 'contrast'}
    for key, value in terms.items():
        assert value.dim() == 0 and value.dtype == torch.float64
        assert value.item() == pytest.approx(expected[key], rel=1e-9), key
    assert torch.equal(loss(student, teacher, gt), sum(terms.values()))


def test_tdl_is_the_papers_formula_plus_a_constant():
    student, teacher, gt = random_batch(1)
    loss = TopKDLoss(**dict(TOPKD, contrast_weight=0.0, loss_weight=1.0), teacher_scaling=None)
    rows = ref_valid_rows(student, teacher, gt)
    cos = [ref_tdl(s, t, 2, 1.0, 1.0) for s, t, _ in rows]
    # 1 - cos for each group with unit weights, so cos = 1 - term
    paper = 1 - sum(1.7 * (1 - c['pos']) + 0.6 * (1 - c['neg']) + (1 - c['non']) for c in cos) / len(rows)
    assert loss(student, teacher, gt).item() == pytest.approx(paper + 1.7 + 0.6, rel=1e-9)


def test_topkd_zero_when_student_equals_teacher_and_empty_non_group():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 6, 4, 4, generator=g, dtype=torch.float64)
    loss = TopKDLoss(topk=3, contrast_weight=0.0, teacher_scaling=None)
    terms = loss.forward_terms(z, z.clone())
    assert all(abs(v.item()) < 1e-12 for v in terms.values())
    # 2 * topk == C: Non is empty and contributes exactly 0
    assert terms['non'].item() == 0.0
    other = torch.randn(3, 6, 4, 4, generator=g, dtype=torch.float64)
    assert loss.forward_terms(other, z)['non'].item() == 0.0
    assert loss.forward_terms(other, z)['pos'].item() > 0


def test_topkd_scales_the_teacher_with_its_own_k():
    loss = TopKDLoss(topk=3)
    assert isinstance(loss.teacher_scaling, TopKScaling)
    assert loss.teacher_scaling.k == 3
    assert TopKDLoss(topk=3, teacher_scaling=dict(type='TopKScaling', k=1)).teacher_scaling.k == 1
    built = MODELS.build(dict(type='TopKDLoss', topk=2, teacher_scaling=None))
    assert built.teacher_scaling is None and built.loss_name == 'loss_topkd'


def test_topkd_gradcheck():
    g = torch.Generator().manual_seed(6)
    student = torch.randn(2, 6, 2, 3, generator=g, dtype=torch.float64)
    teacher = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64)
    gt = torch.randint(0, 6, (2, 3, 3), generator=g)
    gt[0, 0, 0] = gt[1, 2, 1] = IGNORE
    loss = TopKDLoss(**TOPKD, teacher_scaling=TSM)
    assert torch.autograd.gradcheck(lambda s, t: loss(s, t, gt), (student.requires_grad_(), teacher.requires_grad_()))


def test_contrastive_subsample_respects_ignore_index(monkeypatch):
    g = torch.Generator().manual_seed(7)
    student = torch.randn(2, 6, 4, 5, generator=g, dtype=torch.float64)
    teacher = torch.randn(2, 6, 4, 5, generator=g, dtype=torch.float64)
    gt = torch.randint(0, 6, (2, 4, 5), generator=g)
    gt[torch.rand(gt.shape, generator=g) < 0.4] = IGNORE
    ignored = (gt == IGNORE)[:, None].expand_as(student)
    # ignored pixels hold NaN: any of them in the sample would poison the loss
    student[ignored] = float('nan')
    teacher[ignored] = float('nan')
    student.requires_grad_()
    sizes = []
    real_contrastive = topkd_module.batch_contrastive
    monkeypatch.setattr(
        topkd_module, 'batch_contrastive', lambda s, t, tau: sizes.append(s.shape[0]) or real_contrastive(s, t, tau)
    )

    loss = TopKDLoss(topk=2, contrast_weight=1.0, tau=0.5, contrast_pixels=5, teacher_scaling=None)
    torch.manual_seed(11)
    terms = loss.forward_terms(student, teacher, gt)
    assert sizes == [5]
    assert all(torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    assert torch.isfinite(student.grad).all()
    assert (student.grad[ignored] == 0).all()

    # the sample is 5 distinct valid pixels drawn with torch's global RNG
    rows = ref_valid_rows(student.detach(), teacher, gt)
    torch.manual_seed(11)
    index = torch.randperm(len(rows))[:5].tolist()
    expected = ref_contrast([rows[i][0] for i in index], [rows[i][1] for i in index], 0.5)
    assert terms['contrast'].item() == pytest.approx(expected, rel=1e-9)
    # fewer valid pixels than contrast_pixels: all of them
    sizes.clear()
    TopKDLoss(topk=2, contrast_pixels=10_000).forward_terms(student.detach(), teacher, gt)
    assert sizes == [len(rows)]


def test_topkd_classification_logits_and_all_ignored():
    g = torch.Generator().manual_seed(8)
    zs = torch.randn(8, 10, generator=g, requires_grad=True)
    zt = torch.randn(8, 10, generator=g)
    labels = torch.randint(0, 10, (8,), generator=g)
    value = TopKDLoss()(zs, zt, labels)
    value.backward()
    assert value.item() > 0 and zs.grad.abs().sum() > 0
    maps = TopKDLoss()(zs.detach()[..., None, None], zt[..., None, None], labels.view(8, 1, 1))
    assert value.item() == pytest.approx(maps.item(), rel=1e-6)
    s = torch.randn(2, 10, 3, 3, requires_grad=True)
    none = TopKDLoss()(s, torch.randn(2, 10, 3, 3), torch.full((2, 3, 3), IGNORE))
    none.backward()
    assert none.item() == 0.0 and torch.equal(s.grad, torch.zeros_like(s))


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(topk=0), r'topk must be an integer >= 1, got 0'),
        (dict(alpha=-1.0), r'alpha must be >= 0, got -1\.0'),
        (dict(beta=-0.5), r'beta must be >= 0, got -0\.5'),
        (dict(contrast_weight=-1), r'contrast_weight must be >= 0, got -1'),
        (dict(tau=0.0), r'tau must be > 0, got 0\.0'),
        (
            dict(contrast_pixels=1),
            r'contrast_pixels must be an integer >= 2.*'
            r'got 1',
        ),
        (dict(contrast_pixels=64.0), r'contrast_pixels must be.*got 64\.0'),
        (dict(loss_weight=-1.0), r'loss_weight must be >= 0, got -1\.0'),
        (dict(teacher_scaling=dict(type='TopKScaling', delta_coef=-1.0)), r'delta_coef must be >= 0'),
    ],
)
def test_topkd_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TopKDLoss(**kwargs)


def test_topkd_input_errors():
    with pytest.raises(
        ValueError,
        match=r'2 \* topk <= C.*topk=3.*C=5.*'
        r'lower topk',
    ):
        TopKDLoss(topk=3)(torch.randn(2, 5), torch.randn(2, 5))
    with pytest.raises(
        TypeError,
        match=r'teacher_scaling must be None, a '
        r"config dict such as dict\(type='TopKScaling'.*str",
    ):
        TopKDLoss(teacher_scaling='TopKScaling')
    with pytest.raises(KeyError, match='NoSuchScaling'):
        TopKDLoss(teacher_scaling=dict(type='NoSuchScaling'))


# ----------------------------------------------------------------------------
# TSM inside the other logit losses
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    'loss_cls, kwargs',
    [
        (KDLoss, dict(temperature=2.0)),
        (DKDLoss, dict(alpha=1.0, beta=2.0)),
        (GDKDLoss, dict(topk=3, w2=2.0)),
    ],
)
def test_teacher_scaling_feeds_the_scaled_teacher_to_the_loss(loss_cls, kwargs):
    g = torch.Generator().manual_seed(9)
    student = torch.randn(2, 7, 5, 6, generator=g, dtype=torch.float64)
    teacher = torch.randn(2, 7, 5, 6, generator=g, dtype=torch.float64)
    gt = torch.randint(0, 7, (2, 5, 6), generator=g)
    gt[:, 0] = IGNORE
    scaled = loss_cls(**kwargs, teacher_scaling=dict(type='TopKScaling', **TSM))
    plain = loss_cls(**kwargs)
    expected = plain(student, TopKScaling(**TSM)(teacher, gt), gt)
    assert scaled(student, teacher, gt).item() == pytest.approx(expected.item(), rel=1e-12)
    assert scaled(student, teacher, gt).item() != pytest.approx(plain(student, teacher, gt).item(), rel=1e-3)
    built = MODELS.build(dict(type=loss_cls.__name__, **kwargs, teacher_scaling=dict(type='TopKScaling', k=2)))
    assert isinstance(built.teacher_scaling, TopKScaling)
    assert plain.teacher_scaling is None


def test_distiller_trains_with_topkd_and_gdkd_tsm(tmp_path):
    from helpers import tiny_segmentor

    torch.manual_seed(0)
    teacher = MODELS.build(tiny_segmentor(6, width=16, aux=True))
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, ckpt)
    model = MODELS.build(
        dict(
            type='SegDistiller',
            student=tiny_segmentor(6, width=8, aux=True),
            teacher=tiny_segmentor(6, width=16, aux=True),
            teacher_checkpoint=str(ckpt),
            distill_losses=dict(
                decode=dict(
                    student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg',
                    loss=dict(type='TopKDLoss', topk=2, contrast_pixels=64),
                ),
                aux=dict(
                    student='auxiliary_head.conv_seg',
                    teacher='auxiliary_head.conv_seg',
                    loss=dict(type='GDKDLoss', topk=2, loss_weight=0.4, teacher_scaling=dict(type='TopKScaling', k=2)),
                ),
            ),
        )
    )
    model.init_weights()
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for _ in range(2):
        s = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 6, (1, 32, 32))))
        s.set_metainfo(dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        samples.append(s)
    losses = model(torch.randn(2, 3, 32, 32), samples, mode='loss')
    assert 'distill.decode.loss_topkd' in losses
    assert 'distill.aux.loss_gdkd' in losses
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.student.decode_head.conv_seg.weight.grad.abs().sum() > 0
