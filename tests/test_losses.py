"""Tests of the logit-distillation losses against a float64 reference.

The reference below is written from the formulas with explicit loops and
explicit softmaxes; it shares no code with ``gdkd_seg.losses`` (only the
bilinear resizing of logit maps is delegated to ``F.interpolate``).
"""

import math

import pytest
import torch
from helpers import IGNORE, random_batch, ref_aligned_maps, ref_softmax, ref_valid_rows

import gdkd_seg.losses  # noqa: F401  (registers the losses)
from gdkd_seg.losses import (
    CWDLoss,
    DISTLoss,
    DKDLoss,
    GDKD3Loss,
    GDKDLoss,
    KDLoss,
    flatten_logits_and_labels,
    grouped_kl,
    topk_partition_mask,
)

pytestmark = pytest.mark.usefixtures('single_thread')  # tiny tensors (conftest.py)


# ----------------------------------------------------------------------------
# float64 reference, from the formulas
# ----------------------------------------------------------------------------


def ref_kl(p, q):
    return sum(float(pi) * math.log(float(pi) / float(qi)) for pi, qi in zip(p, q) if pi > 0)


def ref_group_terms(zs, zt, groups, T):
    """Mass KL and the list of within-group KLs for a list of index lists."""
    ps, pt = ref_softmax(zs / T), ref_softmax(zt / T)
    bs = torch.stack([ps[g].sum() for g in groups])
    bt = torch.stack([pt[g].sum() for g in groups])
    within = [ref_kl(ref_softmax(zt[g] / T), ref_softmax(zs[g] / T)) if len(g) else 0.0 for g in groups]
    return ref_kl(bt, bs), within


def teacher_order(zt):
    return [int(i) for i in torch.argsort(zt, descending=True)]


def ref_gdkd(zs, zt, topk, w0, w1, w2, T):
    order = teacher_order(zt)
    high, (top, other) = ref_group_terms(zs, zt, [order[:topk], order[topk:]], T)
    return dict(high=T * T * w0 * high, top=T * T * w1 * top, other=T * T * w2 * other)


def ref_gdkd3(zs, zt, topk, w0, w1, w2, T):
    order = teacher_order(zt)
    groups = [order[:1], order[1:topk], order[topk:]]
    high, (_, top, other) = ref_group_terms(zs, zt, groups, T)
    return dict(high=T * T * w0 * high, top=T * T * w1 * top, other=T * T * w2 * other)


def ref_dkd(zs, zt, label, alpha, beta, T):
    rest = [c for c in range(zs.numel()) if c != label]
    tckd, (_, nckd) = ref_group_terms(zs, zt, [[label], rest], T)
    return dict(tckd=T * T * alpha * tckd, nckd=T * T * beta * nckd)


def ref_kd(zs, zt, T):
    return dict(kd=T * T * ref_kl(ref_softmax(zt / T), ref_softmax(zs / T)))


def ref_pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt(float((a * a).sum() * (b * b).sum())))


def ref_dist(rows_s, rows_t, beta, gamma, tau):
    ys = torch.stack([ref_softmax(r / tau) for r in rows_s])
    yt = torch.stack([ref_softmax(r / tau) for r in rows_t])
    P, C = ys.shape
    inter = 1 - sum(ref_pearson(ys[p], yt[p]) for p in range(P)) / P
    intra = 1 - sum(ref_pearson(ys[:, c], yt[:, c]) for c in range(C)) / C
    return dict(inter=tau * tau * beta * inter, intra=tau * tau * gamma * intra)


def ref_mean_terms(rows, per_position, loss_weight):
    total = {}
    for zs, zt, label in rows:
        for name, value in per_position(zs, zt, label).items():
            total[name] = total.get(name, 0.0) + value
    return {k: loss_weight * v / max(len(rows), 1) for k, v in total.items()}


def ref_cwd(student, teacher, gt, tau, resize_mode):
    s, t, labels = ref_aligned_maps(student, teacher, gt, resize_mode)
    N, C, H, W = s.shape
    total, images = 0.0, 0
    for n in range(N):
        pos = [(i, j) for i in range(H) for j in range(W) if labels is None or int(labels[n, i, j]) != IGNORE]
        if not pos:
            continue
        images += 1
        for c in range(C):
            vs = torch.stack([s[n, c, i, j] for i, j in pos])
            vt = torch.stack([t[n, c, i, j] for i, j in pos])
            total += ref_kl(ref_softmax(vt / tau), ref_softmax(vs / tau))
    return dict(cwd=tau * tau * total / max(images * C, 1))


def reference_terms(name, kwargs, student, teacher, gt, resize_mode):
    kw = dict(kwargs)
    lw = kw.pop('loss_weight', 1.0)
    if name == 'CWDLoss':
        out = ref_cwd(student, teacher, gt, kw['tau'], resize_mode)
        return {k: lw * v for k, v in out.items()}
    rows = ref_valid_rows(student, teacher, gt, resize_mode)
    if name == 'DISTLoss':
        out = ref_dist([r[0] for r in rows], [r[1] for r in rows], **kw)
        return {k: lw * v for k, v in out.items()}
    per_position = {
        'GDKDLoss': lambda s, t, y: ref_gdkd(s, t, kw['topk'], kw['w0'], kw['w1'], kw['w2'], kw['temperature']),
        'GDKD3Loss': lambda s, t, y: ref_gdkd3(s, t, kw['topk'], kw['w0'], kw['w1'], kw['w2'], kw['temperature']),
        'DKDLoss': lambda s, t, y: ref_dkd(s, t, y, kw['alpha'], kw['beta'], kw['temperature']),
        'KDLoss': lambda s, t, y: ref_kd(s, t, kw['temperature']),
    }[name]
    return ref_mean_terms(rows, per_position, lw)


# non-default settings, so that a swapped weight cannot go unnoticed
LOSS_CONFIGS = {
    'GDKDLoss': dict(topk=2, w0=0.7, w1=1.3, w2=2.5, temperature=2.0, loss_weight=0.5),
    'GDKD3Loss': dict(topk=3, w0=0.6, w1=1.7, w2=3.0, temperature=1.5, loss_weight=0.8),
    'DKDLoss': dict(alpha=0.6, beta=2.5, temperature=3.0, loss_weight=1.5),
    'KDLoss': dict(temperature=2.5, loss_weight=0.7),
    'DISTLoss': dict(beta=0.6, gamma=1.8, tau=2.0, loss_weight=1.2),
    'CWDLoss': dict(tau=2.0, loss_weight=3.0),
}
LOSS_CLASSES = {cls.__name__: cls for cls in (GDKDLoss, GDKD3Loss, DKDLoss, KDLoss, DISTLoss, CWDLoss)}
TERM_NAMES = {
    'GDKDLoss': {'high', 'top', 'other'},
    'GDKD3Loss': {'high', 'top', 'other'},
    'DKDLoss': {'tckd', 'nckd'},
    'KDLoss': {'kd'},
    'DISTLoss': {'inter', 'intra'},
    'CWDLoss': {'cwd'},
}
ALL_LOSSES = sorted(LOSS_CLASSES)
ROW_LOSSES = [n for n in ALL_LOSSES if n != 'CWDLoss']


def build(name, **overrides):
    return LOSS_CLASSES[name](**{**LOSS_CONFIGS[name], **overrides})


# ----------------------------------------------------------------------------
# values and gradients
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('resize_mode', ['logits', 'label'])
@pytest.mark.parametrize('name', ALL_LOSSES)
def test_values_match_reference(name, resize_mode):
    label_hw = (7, 9) if resize_mode == 'logits' else (6, 7)
    student, teacher, gt = random_batch(0, label_hw=label_hw)
    loss = build(name, resize_mode=resize_mode)
    terms = loss.forward_terms(student, teacher, gt)
    expected = reference_terms(name, LOSS_CONFIGS[name], student, teacher, gt, resize_mode)
    assert set(terms) == TERM_NAMES[name] == set(expected)
    for key, value in terms.items():
        assert value.dim() == 0 and value.dtype == torch.float64
        assert value.item() == pytest.approx(expected[key], rel=1e-7, abs=1e-9), key
    total = loss(student, teacher, gt)
    assert total.item() == pytest.approx(sum(expected.values()), rel=1e-7)
    assert torch.equal(total, sum(terms.values()))
    # float32 inputs are computed in float32 and agree to float32 precision
    total32 = loss(student.float(), teacher.float(), gt)
    assert total32.dtype == torch.float32
    assert total32.item() == pytest.approx(total.item(), rel=1e-4)


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_gradcheck(name):
    g = torch.Generator().manual_seed(1)
    student = torch.randn(2, 5, 2, 3, generator=g, dtype=torch.float64)
    teacher = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    gt = torch.randint(0, 5, (2, 3, 3), generator=g)
    gt[0, 0, 0] = gt[1, 2, 1] = IGNORE
    loss = build(name)
    assert torch.autograd.gradcheck(lambda s, t: loss(s, t, gt), (student.requires_grad_(), teacher.requires_grad_()))


def test_gradcheck_grouped_kl_with_empty_groups():
    g = torch.Generator().manual_seed(2)
    zs = torch.randn(4, 5, generator=g, dtype=torch.float64)
    zt = torch.randn(4, 5, generator=g, dtype=torch.float64)
    # row 0: group 1 empty; row 1: group 2 empty; row 2: only group 0
    group_ids = torch.tensor([[0, 0, 2, 2, 2], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0], [2, 1, 0, 1, 2]])

    def f(s, t):
        mass_kl, within_kl = grouped_kl(s, t, group_ids, 3, 1.7)
        return mass_kl, within_kl

    assert torch.autograd.gradcheck(f, (zs.requires_grad_(), zt.requires_grad_()))
    mass_kl, within_kl = f(zs, zt)
    assert within_kl[0, 1] == 0 and within_kl[1, 2] == 0
    assert torch.all(within_kl[2, 1:] == 0)
    assert mass_kl[2].abs() < 1e-12  # a single group carries all the mass
    (mass_kl.sum() + within_kl.sum()).backward()
    assert torch.isfinite(zs.grad).all() and torch.isfinite(zt.grad).all()


# ----------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('T', [1.0, 2.5])
def test_kl_decomposition_identity(T):
    g = torch.Generator().manual_seed(3)
    zs = torch.randn(12, 7, generator=g, dtype=torch.float64) * 2
    zt = torch.randn(12, 7, generator=g, dtype=torch.float64) * 2
    for k in range(1, 7):
        top = topk_partition_mask(zt, k)
        mass_kl, within_kl = grouped_kl(zs, zt, (~top).long(), 2, T)
        for p in range(zs.shape[0]):
            pt, ps = ref_softmax(zt[p] / T), ref_softmax(zs[p] / T)
            bt_top = float(pt[top[p]].sum())
            rhs = mass_kl[p] + bt_top * within_kl[p, 0] + (1 - bt_top) * within_kl[p, 1]
            assert float(rhs) == pytest.approx(ref_kl(pt, ps), rel=1e-9)


def test_gdkd_topk1_equals_dkd_on_teacher_argmax_labels():
    student, teacher, _ = random_batch(4, teacher_hw=(4, 5))
    labels = teacher.argmax(dim=1)
    a, b, T = 0.7, 3.5, 2.0
    gdkd = GDKDLoss(topk=1, w0=a, w1=5.0, w2=b, temperature=T)
    dkd = DKDLoss(alpha=a, beta=b, temperature=T)
    g_terms = gdkd.forward_terms(student, teacher)
    d_terms = dkd.forward_terms(student, teacher, labels)
    assert g_terms['top'] == 0
    torch.testing.assert_close(g_terms['high'], d_terms['tckd'])
    torch.testing.assert_close(g_terms['other'], d_terms['nckd'])
    torch.testing.assert_close(gdkd(student, teacher), dkd(student, teacher, labels))
    assert d_terms['tckd'] > 0 and d_terms['nckd'] > 0


def test_gdkd_unit_weights_is_not_kd():
    student, teacher, gt = random_batch(5)
    gdkd = GDKDLoss(w0=1.0, w1=1.0, w2=1.0)
    kd = KDLoss()
    assert abs(float(gdkd(student, teacher, gt) - kd(student, teacher, gt))) > 1e-3


@pytest.mark.parametrize('name', ROW_LOSSES)
def test_2d_logits_equal_1x1_maps(name):
    g = torch.Generator().manual_seed(6)
    student = torch.randn(7, 6, generator=g)
    teacher = torch.randn(7, 6, generator=g)
    labels = torch.randint(0, 6, (7,), generator=g)
    labels[2] = IGNORE
    loss = build(name)
    flat = loss.forward_terms(student, teacher, labels)
    maps = loss.forward_terms(student[..., None, None], teacher[..., None, None], labels[:, None, None])
    assert flat.keys() == maps.keys()
    for key in flat:
        torch.testing.assert_close(flat[key], maps[key], rtol=0, atol=0)
    assert loss(student, teacher, labels) > 0


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_zero_when_student_equals_teacher(name):
    _, teacher, gt = random_batch(7, teacher_hw=(4, 5))
    loss = build(name)
    value = loss(teacher.clone(), teacher, gt)
    assert value.abs() < 1e-12
    assert loss(teacher.clone() + 0.5, teacher, gt).abs() < 1e-12


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_non_negative(name):
    loss = build(name)
    for seed in range(4):
        student, teacher, gt = random_batch(10 + seed)
        scale = 0.1 * 10**seed
        terms = loss.forward_terms(student * scale, teacher, gt)
        assert all(v >= 0 for v in terms.values()), terms
        assert sum(terms.values()) > 0


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_all_ignored_batch_gives_zero_and_backward_works(name):
    student, teacher, gt = random_batch(8, dtype=torch.float32)
    gt.fill_(IGNORE)
    student.requires_grad_()
    teacher.requires_grad_()
    loss = build(name)(student, teacher, gt)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))
    assert torch.equal(teacher.grad, torch.zeros_like(teacher))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', ALL_LOSSES)
def test_half_precision_input_is_computed_in_float32(name, dtype):
    student, teacher, gt = random_batch(9, dtype=dtype)
    student.requires_grad_()
    loss = build(name)
    value = loss(student, teacher, gt)
    assert value.dtype == torch.float32
    expected = loss(student.detach().double(), teacher.double(), gt)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert student.grad.dtype == dtype
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_extreme_logits_stay_finite(name):
    g = torch.Generator().manual_seed(11)
    student = (torch.randn(2, 6, 4, 5, generator=g) * 1e4).requires_grad_()
    teacher = (torch.randn(2, 6, 4, 5, generator=g) * 1e4).requires_grad_()
    _, _, gt = random_batch(11, label_hw=(4, 5))
    loss = build(name)
    terms = loss.forward_terms(student, teacher, gt)
    value = sum(terms.values())
    assert torch.isfinite(value) and value > 0
    value.backward()
    assert torch.isfinite(student.grad).all()
    assert torch.isfinite(teacher.grad).all()
    # and the float64 computation agrees
    expected = loss(student.detach().double(), teacher.detach().double(), gt)
    assert value.item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_fully_ignored_image_is_left_out(name):
    student, teacher, gt = random_batch(19)
    gt[0] = IGNORE
    loss = build(name)
    torch.testing.assert_close(loss(student, teacher, gt), loss(student[1:], teacher[1:], gt[1:]))


def test_ignore_index_none_and_mmseg_label_layout():
    student, teacher, gt = random_batch(12)
    kd = KDLoss()
    kd_all = KDLoss(ignore_index=None)
    assert kd_all(student, teacher, gt) == kd_all(student, teacher)
    assert kd(student, teacher, gt) != kd(student, teacher)
    gdkd = GDKDLoss()
    assert gdkd(student, teacher, gt[:, None]) == gdkd(student, teacher, gt)


def test_flatten_resizes_labels_and_teacher():
    student, teacher, gt = random_batch(13)
    zs, zt, labels, valid = flatten_logits_and_labels(student, teacher, gt)
    rows = ref_valid_rows(student, teacher, gt)
    assert zs.shape == zt.shape == (2 * 4 * 5, 6) and int(valid.sum()) == len(rows)
    torch.testing.assert_close(zs[valid], torch.stack([r[0] for r in rows]))
    torch.testing.assert_close(zt[valid], torch.stack([r[1] for r in rows]))
    assert labels[valid].tolist() == [r[2] for r in rows]


def test_topk_partition_mask_rows_and_maps():
    g = torch.Generator().manual_seed(14)
    maps = torch.randn(2, 7, 3, 4, generator=g)
    maps[0, :, 0, 0] = 0.0  # all tied
    rows = maps.permute(0, 2, 3, 1).reshape(-1, 7)
    for k in (1, 3, 6):
        mask_maps = topk_partition_mask(maps, k, dim=1)
        mask_rows = topk_partition_mask(rows, k, dim=1)
        assert torch.equal(mask_maps.permute(0, 2, 3, 1).reshape(-1, 7), mask_rows)
        assert torch.all(mask_rows.sum(dim=1) == k)
        expected = torch.zeros_like(rows, dtype=torch.bool).scatter(1, rows.topk(k, dim=1).indices, True)
        assert torch.equal(mask_rows, expected)
        # every selected logit is >= every unselected one
        assert torch.all(
            rows.masked_fill(~mask_rows, float('inf')).amin(1) >= rows.masked_fill(mask_rows, -float('inf')).amax(1)
        )


# ----------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    'name,kwargs,match',
    [
        ('GDKDLoss', dict(topk=0), 'topk must be an integer >= 1'),
        ('GDKD3Loss', dict(topk=0), 'topk must be an integer >= 1'),
        ('GDKDLoss', dict(topk=2.5), 'topk must be an integer'),
        ('GDKDLoss', dict(w0=-1.0), 'w0 must be >= 0'),
        ('GDKDLoss', dict(w1=-1.0), 'w1 must be >= 0'),
        ('GDKD3Loss', dict(w2=-0.1), 'w2 must be >= 0'),
        ('DKDLoss', dict(alpha=-1.0), 'alpha must be >= 0'),
        ('DKDLoss', dict(beta=-1.0), 'beta must be >= 0'),
        ('DISTLoss', dict(beta=-1.0), 'beta must be >= 0'),
        ('DISTLoss', dict(gamma=-1.0), 'gamma must be >= 0'),
        ('GDKDLoss', dict(temperature=0.0), 'temperature must be > 0'),
        ('GDKD3Loss', dict(temperature=-1.0), 'temperature must be > 0'),
        ('DKDLoss', dict(temperature=0), 'temperature must be > 0'),
        ('KDLoss', dict(temperature=-2.0), 'temperature must be > 0'),
        ('DISTLoss', dict(tau=0.0), 'tau must be > 0'),
        ('CWDLoss', dict(tau=-1.0), 'tau must be > 0'),
        ('KDLoss', dict(loss_weight=-1.0), 'loss_weight must be >= 0'),
        ('CWDLoss', dict(resize_mode='bilinear'), 'resize_mode must be one of'),
    ],
)
def test_constructor_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(name, **kwargs)


@pytest.mark.parametrize('name', ['GDKDLoss', 'GDKD3Loss'])
def test_topk_not_below_class_count(name):
    student, teacher, gt = random_batch(15, shape=(2, 4, 4, 5))
    with pytest.raises(
        ValueError,
        match=r'topk < C, got topk=4 .*'
        r'\(2, 4, 4, 5\).*\(2, 4, 8, 10\)',
    ):
        build(name, topk=4)(student, teacher, gt)
    assert build(name, topk=3)(student, teacher, gt) > 0


@pytest.mark.parametrize('name', ALL_LOSSES)
def test_shape_errors(name):
    loss = build(name)
    s4, t4, gt = random_batch(16)
    with pytest.raises(
        ValueError,
        match=r'class counts.*\(2, 6, 4, 5\).*'
        r'\(2, 5, 8, 10\)',
    ):
        loss(s4, t4[:, :5], gt)
    with pytest.raises(
        ValueError,
        match=r'same rank.*\(2, 6, 4, 5\).*'
        r'\(2, 6\)',
    ):
        loss(s4, t4[:, :, 0, 0], gt)
    with pytest.raises(
        ValueError,
        match=r'batch sizes.*\(2, 6, 4, 5\).*'
        r'\(1, 6, 8, 10\)',
    ):
        loss(s4, t4[:1], gt)
    with pytest.raises(
        ValueError,
        match=r'\(N, H, W\) labels, got labels '
        r'\(2, 9\)',
    ):
        loss(s4, t4, gt[:, 0])
    with pytest.raises(
        ValueError,
        match=r'labels and logits have different '
        r'batch sizes',
    ):
        loss(s4, t4, gt[:1])
    with pytest.raises(ValueError, match='labels must be an integer tensor'):
        loss(s4, t4, gt.double())
    with pytest.raises(
        ValueError,
        match=r'\(N, C\) or \(N, C, H, W\).*'
        r'\(2, 6, 4\)',
    ):
        loss(s4[..., 0], t4[..., 0], gt)
    if name != 'CWDLoss':
        with pytest.raises(
            ValueError,
            match=r'\(N,\) class labels, got '
            r'labels \(2, 1\)',
        ):
            loss(s4[:, :, 0, 0], t4[:, :, 0, 0], gt[:, :1, 0])


@pytest.mark.parametrize('fused', [True, False])
def test_dkd_needs_labels_in_range(fused):
    student, teacher, gt = random_batch(17)
    with pytest.raises(ValueError, match='DKD needs labels'):
        DKDLoss(fused=fused)(student, teacher)
    with pytest.raises(
        ValueError,
        match=r'labels must lie in \[0, 6\) outside ignore_index=None, got values '
        r'in \[0, 255\]',
    ):
        DKDLoss(ignore_index=None, fused=fused)(student, teacher, gt)
    negative = gt.masked_fill(gt == 255, -1)
    with pytest.raises(ValueError, match=r'got values in \[-1, '):
        DKDLoss(fused=fused)(student, teacher, negative)
    flat = gt[:, 0, 0].clone()  # (N,) class labels, one out of range
    flat[0] = 6
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 6\)'):
        DKDLoss(fused=fused)(student[:, :, 0, 0], teacher[:, :, 0, 0], flat)
    with pytest.raises(ValueError, match=r'^DKD labels must lie in \[0, 6\)'):  # before the scaling reads them
        DKDLoss(fused=fused, teacher_scaling=dict(k=2))(student, teacher, negative)
    assert torch.isfinite(DKDLoss(fused=fused)(student, teacher, gt))  # 255 is ignored


def test_cwd_needs_maps():
    with pytest.raises(ValueError, match=r'CWD needs \(N, C, H, W\) maps'):
        CWDLoss()(torch.randn(3, 4), torch.randn(3, 4))


# ----------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('name', ALL_LOSSES)
def test_build_from_config_through_registry(name):
    from mmseg.registry import MODELS

    cfg = dict(type=name, loss_weight=0.3, loss_name='loss_custom', ignore_index=0)
    loss = MODELS.build(cfg)
    assert type(loss) is LOSS_CLASSES[name]
    assert loss.loss_weight == 0.3 and loss.ignore_index == 0
    assert loss.loss_name == 'loss_custom'
    assert LOSS_CLASSES[name]().loss_name == 'loss_' + name[:-4].lower()
    student, teacher, gt = random_batch(18, ignore_frac=0.0)
    torch.testing.assert_close(
        loss(student, teacher, gt), 0.3 * LOSS_CLASSES[name](ignore_index=0)(student, teacher, gt)
    )
