"""The fused GDKD/DKD path against the plain autograd implementation, and
the inference-only teacher.

The plain losses (``fused=False``) are themselves checked against a float64
loop reference in test_losses.py; here the fused path must match them in
value and in the gradient w.r.t. the student logits.
"""

import warnings

import pytest
import torch
from helpers import tiny_segmentor
from mmseg.registry import MODELS

import gdkd_seg.losses.fused as fused
from gdkd_seg.losses import DKDLoss, GDKDLoss, align_logits_and_labels, topk_partition_mask
from gdkd_seg.losses.fused import FusedTwoGroupKL, fused_dkd_terms, fused_gdkd_terms, topk_threshold

IGNORE = 255


pytestmark = pytest.mark.usefixtures('single_thread')  # tiny tensors (conftest.py)


def maps(n=2, c=7, h=6, w=10, scale=2.0, dtype=torch.float32, seed=0, label_size=None, ignored=0.2):
    """Student (requires grad) and teacher logits, labels with ignored
    pixels, at ``label_size`` (default: the logit size)."""
    g = torch.Generator().manual_seed(seed)
    zs = (scale * torch.randn(n, c, h, w, generator=g)).to(dtype)
    zt = (scale * torch.randn(n, c, h, w, generator=g)).to(dtype)
    lh, lw = label_size or (h, w)
    gt = torch.randint(0, c, (n, lh, lw), generator=g)
    gt[torch.rand(n, lh, lw, generator=g) < ignored] = IGNORE
    return zs.requires_grad_(), zt, gt


def terms_and_grad(loss, zs, zt, gt):
    zs.grad = None
    terms = loss.forward_terms(zs, zt, gt)
    sum(terms.values()).backward()
    grad, zs.grad = zs.grad, None
    return {k: v.detach() for k, v in terms.items()}, grad


def assert_fused_matches_plain(loss_type, zs, zt, gt, rtol=1e-5, atol=1e-6, **kwargs):
    plain_terms, plain_grad = terms_and_grad(loss_type(fused=False, **kwargs), zs, zt, gt)
    fused_terms, fused_grad = terms_and_grad(loss_type(fused=True, **kwargs), zs, zt, gt)
    assert fused_terms.keys() == plain_terms.keys()
    for name in plain_terms:
        torch.testing.assert_close(fused_terms[name], plain_terms[name], rtol=rtol, atol=atol, msg=name)
    assert fused_grad.dtype == zs.dtype
    scale = plain_grad.abs().max().clamp_min(1e-12)
    torch.testing.assert_close(fused_grad / scale, plain_grad / scale, rtol=rtol, atol=atol)
    return fused_terms, fused_grad


# ----------------------------------------------------------------------------
# values and gradients against the plain implementation
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('topk', range(1, 7))
def test_gdkd_every_topk_with_ignored_pixels(topk):
    zs, zt, gt = maps(c=7)
    terms, grad = assert_fused_matches_plain(
        GDKDLoss, zs, zt, gt, topk=topk, w0=1.0, w1=1.5, w2=2.0, temperature=1.0, loss_weight=0.7
    )
    # a one-class group has a zero within-group KL
    singleton = {'top'} if topk == 1 else {'other'} if topk == 6 else set()
    assert all((v == 0) == (k in singleton) for k, v in terms.items())
    ignored = (gt == IGNORE)[:, None].expand_as(grad)
    assert ignored.any() and torch.all(grad[ignored] == 0)


@pytest.mark.parametrize('temperature', [0.5, 4.0])
@pytest.mark.parametrize('resize_mode', ['logits', 'label'])
def test_gdkd_temperature_and_mismatched_label_size(temperature, resize_mode):
    zs, zt, gt = maps(h=5, w=8, label_size=(10, 16))
    assert_fused_matches_plain(GDKDLoss, zs, zt, gt, topk=2, temperature=temperature, resize_mode=resize_mode)


def test_gdkd_teacher_at_another_size_and_no_labels():
    zs, _, _ = maps(h=8, w=12)
    zt = torch.randn(2, 7, 4, 6)
    assert_fused_matches_plain(GDKDLoss, zs, zt, None, topk=3)


def test_gdkd_teacher_ties_follow_torch_topk():
    # bf16-rounded teachers tie often; where a tie crosses the top-k
    # boundary the fused path must pick the classes torch.topk picks.
    zs, zt, gt = maps(c=9, h=8, w=8)
    zt = (zt * 2).round() / 2
    zt[0, :4, 0, :] = 3.0  # four-way tie for the top-3 on a whole row
    kth, tied = topk_threshold(zt, 3)
    assert tied.sum() >= 8
    assert_fused_matches_plain(GDKDLoss, zs, zt, gt, topk=3)


@pytest.mark.parametrize('temperature', [1.0, 3.0])
def test_dkd_partition_by_labels(temperature):
    zs, zt, gt = maps(c=6, label_size=(12, 20))
    assert_fused_matches_plain(DKDLoss, zs, zt, gt, alpha=0.5, beta=8.0, temperature=temperature, loss_weight=2.0)


def test_classification_logits_and_teacher_scaling_rows():
    zs, zt = torch.randn(16, 10).requires_grad_(), torch.randn(16, 10)
    labels = torch.randint(0, 10, (16,))
    labels[:3] = IGNORE
    assert_fused_matches_plain(GDKDLoss, zs, zt, labels, topk=4)
    assert_fused_matches_plain(DKDLoss, zs, zt, labels)
    # TopKD's scaling works on the valid rows: the fused path takes them too
    assert_fused_matches_plain(GDKDLoss, zs, zt, labels, topk=2, teacher_scaling=dict(k=2))
    assert_fused_matches_plain(DKDLoss, zs, zt, labels, teacher_scaling=dict(k=2))


@pytest.mark.parametrize('loss_type,kwargs', [(GDKDLoss, dict(topk=3)), (DKDLoss, dict())])
def test_extreme_logits_stay_finite_and_exact(loss_type, kwargs):
    zs, zt, gt = maps(scale=1e4)
    fused_terms, fused_grad = terms_and_grad(loss_type(**kwargs), zs, zt, gt)
    ref_terms, ref_grad = terms_and_grad(
        loss_type(fused=False, **kwargs), zs.detach().double().requires_grad_(), zt.double(), gt
    )
    assert torch.isfinite(fused_grad).all()
    for name, value in fused_terms.items():
        assert torch.isfinite(value)
        torch.testing.assert_close(value.double(), ref_terms[name], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(fused_grad.double(), ref_grad, rtol=1e-5, atol=1e-6 * ref_grad.abs().max().item())


@pytest.mark.parametrize('loss_type', [GDKDLoss, DKDLoss])
def test_all_ignored_batch_gives_zero_loss_and_gradient(loss_type):
    zs, zt, gt = maps()
    gt.fill_(IGNORE)
    terms, grad = terms_and_grad(loss_type(), zs, zt, gt)
    assert all(v == 0 for v in terms.values())
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('loss_type,kwargs', [(GDKDLoss, dict(topk=3)), (DKDLoss, dict())])
def test_half_precision_inputs(dtype, loss_type, kwargs):
    zs, zt, gt = maps(dtype=dtype)
    terms, _ = assert_fused_matches_plain(loss_type, zs, zt, gt, **kwargs)
    assert all(v.dtype == torch.float32 for v in terms.values())


def test_teacher_needing_gradient_uses_the_plain_path():
    zs, zt, gt = maps()
    zt.requires_grad_()
    sum(GDKDLoss(topk=2).forward_terms(zs, zt, gt).values()).backward()
    assert zt.grad is not None and zt.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='detach them'):
        fused_gdkd_terms(zs, zt, None, 2, (1, 1, 1))


def test_bad_backend_is_a_clear_error():
    zs, zt, _ = maps()
    with pytest.raises(ValueError, match="'auto', 'compile', 'eager'"):
        fused_gdkd_terms(zs, zt, None, 2, (1, 1, 1), backend='triton')


# ----------------------------------------------------------------------------
# the autograd Function in float64
# ----------------------------------------------------------------------------
def test_function_gradcheck_float64_topk_partition_and_mask():
    g = torch.Generator().manual_seed(3)
    zs = torch.randn(2, 5, 3, 4, dtype=torch.float64, generator=g)
    zt = torch.randn(2, 5, 3, 4, dtype=torch.float64, generator=g)
    valid = torch.rand(2, 1, 3, 4, generator=g) > 0.3

    def loss(s):
        return FusedTwoGroupKL.apply(s, zt, 2, None, valid, (1.0, 0.7, 2.0), 2.0, 0.5, False)

    assert torch.autograd.gradcheck(loss, zs.requires_grad_())


def test_function_gradcheck_float64_label_partition_rows():
    g = torch.Generator().manual_seed(4)
    zs = torch.randn(6, 4, dtype=torch.float64, generator=g)
    zt = torch.randn(6, 4, dtype=torch.float64, generator=g)
    labels = torch.randint(0, 4, (6, 1), generator=g)

    def loss(s):
        return FusedTwoGroupKL.apply(s, zt, None, labels, None, (1.0, 0.0, 3.0), 1.0, 1.0, False)

    assert torch.autograd.gradcheck(loss, zs.requires_grad_())


def test_threshold_partition_is_the_topk_partition():
    zt = torch.randn(3, 8, 5, 5)
    for k in range(1, 8):
        kth, tied = topk_threshold(zt, k)
        assert not tied.any()
        assert torch.equal(zt >= kth.unsqueeze(1), topk_partition_mask(zt, k))


# ----------------------------------------------------------------------------
# the compiled kernels (torch.compile / Inductor), the default for large maps
# ----------------------------------------------------------------------------
@pytest.mark.slow
def test_compiled_kernels_match_the_plain_loss():
    zs, zt, gt = maps(c=7, h=16, w=24, seed=5)
    zt[0, :4, 0] = 1.0  # ties across the top-3 boundary on one row
    for loss_type, kwargs in ((GDKDLoss, dict(topk=3, temperature=2.0)), (DKDLoss, dict())):
        plain_terms, plain_grad = terms_and_grad(loss_type(fused=False, **kwargs), zs, zt, gt)
        zs.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # a failed compile warns
            student, teacher, labels, valid = align_logits_and_labels(zs, zt, gt)
            if loss_type is GDKDLoss:
                terms = fused_gdkd_terms(student, teacher, valid, 3, (1.0, 1.0, 2.0), 2.0, backend='compile')
            else:
                terms = fused_dkd_terms(student, teacher, labels, valid, 1.0, 2.0, backend='compile')
        sum(terms.values()).backward()
        for name in plain_terms:
            torch.testing.assert_close(terms[name].detach(), plain_terms[name], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(zs.grad, plain_grad, rtol=1e-4, atol=1e-6 * plain_grad.abs().max())


def test_failed_compilation_falls_back_to_eager(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError('no C++ compiler')

        return run

    monkeypatch.setattr(fused, '_compiled', {})
    monkeypatch.setattr(fused, '_compile_failed', False)
    monkeypatch.setattr(torch, 'compile', broken_compile)
    zs, zt, gt = maps()
    student, teacher, _, valid = align_logits_and_labels(zs, zt, gt)
    with pytest.warns(UserWarning, match='no C\\+\\+ compiler'):
        terms = fused_gdkd_terms(student, teacher, valid, 2, (1.0, 1.0, 2.0), backend='compile')
    assert fused._compile_failed
    expected = GDKDLoss(topk=2, fused=False).forward_terms(zs, zt, gt)
    for name in expected:
        torch.testing.assert_close(terms[name], expected[name])


# ----------------------------------------------------------------------------
# the inference-only teacher
# ----------------------------------------------------------------------------
def teacher_and_recorder(**flags):
    from gdkd_seg.models.teacher import FrozenTeacher

    torch.manual_seed(0)
    teacher = FrozenTeacher(MODELS.build(tiny_segmentor(3, width=8)), None, **flags)
    teacher.loaded = True  # random weights are enough here
    teacher.capture(['decode_head.conv_seg', 'backbone'])
    return teacher


def test_teacher_outputs_are_plain_float32_without_autograd_history():
    teacher = teacher_and_recorder()
    inputs = torch.randn(2, 3, 32, 32, requires_grad=True)
    outputs = teacher(inputs)
    logits = outputs['decode_head.conv_seg']
    feats = outputs['backbone']  # a tuple of stage outputs
    for t in (logits, *feats):
        assert t.dtype == torch.float32 and t.is_contiguous()
        assert t.grad_fn is None and not t.requires_grad
        assert not t.is_inference()  # usable in the student's autograd
    # the inference-mode originals are not kept once copied
    assert not teacher.recorder.outputs

    student = torch.randn_like(logits, requires_grad=True)
    GDKDLoss(topk=1)(student, logits).backward()
    assert student.grad.abs().sum() > 0


def test_teacher_fp16_and_channels_last_flags():
    plain = teacher_and_recorder()
    fast = teacher_and_recorder(fp16=True, channels_last=True)
    conv = fast.model.backbone.stem[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = {}
    fast.model.backbone.stem[0].register_forward_pre_hook(
        lambda m, args: seen.update(input_cl=args[0].is_contiguous(memory_format=torch.channels_last))
    )
    fast.model.decode_head.conv_seg.register_forward_hook(lambda m, args, out: seen.update(dtype=out.dtype))

    inputs = torch.randn(2, 3, 32, 32)
    ref = plain(inputs)['decode_head.conv_seg']
    out = fast(inputs)['decode_head.conv_seg']
    assert seen == dict(input_cl=True, dtype=torch.bfloat16)
    assert out.dtype == torch.float32 and out.is_contiguous()
    assert not torch.equal(out, ref)  # bf16 arithmetic really ran
    torch.testing.assert_close(out, ref, rtol=0.05, atol=0.05)
