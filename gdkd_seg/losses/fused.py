"""Fused two-group KL: GDKD and DKD in a few passes, with an analytic gradient.

GDKD and DKD split the classes of every position into two groups A and B
(GDKD: the teacher's top-k classes; DKD: the label) and sum three KLs:

.. math::
    L = T^2 [w_0 KL(b_t\\|b_s) + w_A KL(q_t^A\\|q_s^A) + w_B KL(q_t^B\\|q_s^B)]

with :math:`b` the group masses and :math:`q^G` the softmax restricted to G.
All of it follows from four numbers per position and group,

.. math::
    m_G = \\max_{i\\in G} s_i, \\quad S_G = \\sum_{i\\in G} e^{s_i - m_G},
    \\quad D_G = \\sum_{i\\in G} e^{t_i - m^t_G}
                 [(t_i - m^t_G) - (s_i - m_G)]

(``s = z_s / T``, ``t = z_t / T``), since
:math:`KL(q_t^G\\|q_s^G) = D_G / S^t_G - \\log S^t_G + \\log S_G` and
:math:`\\log b_G = \\mathrm{lse}_G - \\mathrm{logaddexp}(\\mathrm{lse}_A,
\\mathrm{lse}_B)`. The gradient is elementwise: for class i in group G,

.. math::
    \\frac{\\partial L}{\\partial s_i} = T^2 [(w_0 (b_{s,G} - b_{t,G}) + w_G)
        q_{s,i} - w_G q_{t,i}]

so :class:`FusedTwoGroupKL` keeps only its inputs, the partition mask and
four ``lse`` values per position for the backward, instead of the chain of
``(P, C)`` intermediates autograd would keep. It reduces along dim 1 of
``(N, C, H, W)`` maps (no permute) or of ``(P, C)`` rows.

The kernels are plain torch code. ``backend='compile'`` runs them through
``torch.compile`` (Inductor: C++/OpenMP loops on CPU, Triton on GPU), which
turns each into one or two loops over the logits; ``'eager'`` runs them as
they are; ``'auto'`` (the default) compiles for inputs of at least
:data:`COMPILE_MIN_NUMEL` values and falls back to eager, with a warning, if
compilation fails. Set the environment variable ``GDKD_SEG_COMPILE=0`` to
never compile.
"""
import os
import warnings
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .utils import align_logits_and_labels, topk_partition_mask

# Smaller inputs run eager: compiling costs seconds once and saves little.
COMPILE_MIN_NUMEL = 1 << 20
BACKENDS = ('auto', 'compile', 'eager')
NEG_INF = float('-inf')

_compiled = {}
_compile_failed = False


# ----------------------------------------------------------------------------
# kernels (pure torch; reductions along dim 1, keepdim)
# ----------------------------------------------------------------------------
def _topk_threshold(teacher: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """``(mask, unsure)``: ``teacher >= kth`` with kth the k-th largest
    distinct value, and the positions where that is not exactly k classes
    (ties across the boundary); there :func:`topk_partition_mask` decides."""
    kth = teacher.amax(1, keepdim=True)
    for _ in range(k - 1):
        kth = torch.where(teacher < kth, teacher, NEG_INF).amax(1,
                                                                 keepdim=True)
    mask = teacher >= kth
    return mask, mask.sum(1) != k


def _group_max(x: Tensor, in_a: Tensor) -> Tuple[Tensor, Tensor]:
    return (torch.where(in_a, x, NEG_INF).amax(1, keepdim=True),
            torch.where(in_a, NEG_INF, x).amax(1, keepdim=True))


def _group_sum(x: Tensor, in_a: Tensor) -> Tuple[Tensor, Tensor]:
    return (torch.where(in_a, x, 0).sum(1, keepdim=True),
            torch.where(in_a, 0, x).sum(1, keepdim=True))


def _forward_kernel(zs: Tensor, zt: Tensor, in_a: Tensor,
                    valid: Optional[Tensor], inv_t: float):
    """Sums over the valid positions of (mass KL, KL in A, KL in B), and
    ``lse`` of s and t over A and B, ``(N, 1, ...)`` each."""
    s, t = zs * inv_t, zt * inv_t
    ms_a, ms_b = _group_max(s, in_a)
    mt_a, mt_b = _group_max(t, in_a)
    xs = s - torch.where(in_a, ms_a, ms_b)  # <= 0, 0 at each group's max
    xt = t - torch.where(in_a, mt_a, mt_b)
    et = xt.exp()
    ss_a, ss_b = _group_sum(xs.exp(), in_a)
    st_a, st_b = _group_sum(et, in_a)
    d_a, d_b = _group_sum(et * (xt - xs), in_a)

    log_ss_a, log_ss_b = ss_a.log(), ss_b.log()
    log_st_a, log_st_b = st_a.log(), st_b.log()
    lse_s_a, lse_s_b = ms_a + log_ss_a, ms_b + log_ss_b
    lse_t_a, lse_t_b = mt_a + log_st_a, mt_b + log_st_b
    lse_s = torch.logaddexp(lse_s_a, lse_s_b)
    lse_t = torch.logaddexp(lse_t_a, lse_t_b)
    log_bt_a, log_bt_b = lse_t_a - lse_t, lse_t_b - lse_t
    mass = (log_bt_a.exp() * (log_bt_a - (lse_s_a - lse_s)) +
            log_bt_b.exp() * (log_bt_b - (lse_s_b - lse_s)))
    kl_a = d_a / st_a - log_st_a + log_ss_a
    kl_b = d_b / st_b - log_st_b + log_ss_b
    per_position = torch.cat([mass, kl_a, kl_b], dim=1)
    if valid is not None:
        per_position = torch.where(valid, per_position, 0)
    sums = per_position.sum(dim=[d for d in range(per_position.dim())
                                 if d != 1])
    return sums, lse_s_a, lse_s_b, lse_t_a, lse_t_b


def _backward_kernel(zs: Tensor, zt: Tensor, in_a: Tensor, inv_t: float,
                     lse_s_a: Tensor, lse_s_b: Tensor, lse_t_a: Tensor,
                     lse_t_b: Tensor, alpha_a: Tensor, alpha_b: Tensor,
                     beta_a: Tensor, beta_b: Tensor) -> Tensor:
    """``alpha_G q_s - beta_G q_t`` elementwise, G the group of each class
    (alpha and beta are 0 at the ignored positions)."""
    qs = (zs * inv_t - torch.where(in_a, lse_s_a, lse_s_b)).exp()
    qt = (zt * inv_t - torch.where(in_a, lse_t_a, lse_t_b)).exp()
    return (torch.where(in_a, alpha_a, alpha_b) * qs -
            torch.where(in_a, beta_a, beta_b) * qt)


# ----------------------------------------------------------------------------
# backend selection
# ----------------------------------------------------------------------------
def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f'fused backend must be one of {BACKENDS}, '
                         f'got {backend!r}')
    return backend


def _use_compile(backend: str, numel: int) -> bool:
    if backend == 'eager' or _compile_failed:
        return False
    if backend == 'compile':
        return True
    return (numel >= COMPILE_MIN_NUMEL
            and os.environ.get('GDKD_SEG_COMPILE', '1') != '0')


def _run(kernel, use_compile: bool, *args):
    """``kernel(*args)``, through torch.compile when asked and possible."""
    global _compile_failed
    if use_compile and not _compile_failed:
        if kernel not in _compiled:
            _compiled[kernel] = torch.compile(kernel, dynamic=True)
        try:
            return _compiled[kernel](*args)
        except Exception as err:  # no C++ compiler, unsupported platform...
            _compile_failed = True
            warnings.warn(
                'gdkd_seg fused losses: torch.compile failed, running the '
                f'fused kernels eagerly from now on ({type(err).__name__}: '
                f'{str(err).splitlines()[0] if str(err) else ""}). Set '
                'GDKD_SEG_COMPILE=0 to skip the attempt.')
    return kernel(*args)


# ----------------------------------------------------------------------------
# partitions
# ----------------------------------------------------------------------------
def teacher_topk_mask(teacher_logits: Tensor, k: int,
                      backend: str = 'auto') -> Tensor:
    """Bool mask of the teacher's ``k`` largest logits along dim 1.

    The same partition as :func:`topk_partition_mask` (ties across the
    top-k boundary go to it, so they are broken as ``torch.topk`` breaks
    them), in ``k`` max-reductions instead of a sort.
    """
    teacher = teacher_logits.detach()
    num_classes = teacher.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(f'k must be in [1, {num_classes}] for teacher '
                         f'logits of shape {tuple(teacher.shape)}, got k={k}')
    mask, unsure = _run(_topk_threshold,
                        _use_compile(check_backend(backend), teacher.numel()),
                        teacher, k)
    if unsure.any():
        rows = teacher.movedim(1, -1)[unsure]
        mask.movedim(1, -1)[unsure] = topk_partition_mask(rows, k, dim=1)
    return mask


def label_mask(labels: Tensor, num_classes: int) -> Tensor:
    """Bool ``(N, C, ...)`` mask of the label class of each position."""
    classes = torch.arange(num_classes, device=labels.device)
    return labels.unsqueeze(1) == classes.view(-1, *[1] * (labels.dim() - 1))


# ----------------------------------------------------------------------------
# the autograd Function
# ----------------------------------------------------------------------------
class FusedTwoGroupKL(torch.autograd.Function):
    """``(3,)`` tensor ``loss_weight * T^2 * (w0 mean(KL(b_t||b_s)),
    wA mean(KL(q_t^A||q_s^A)), wB mean(KL(q_t^B||q_s^B)))`` over the valid
    positions; differentiable w.r.t. the student logits only."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, in_a: Tensor,
                valid: Optional[Tensor], weights: Tuple[float, float, float],
                temperature: float, loss_weight: float,
                use_compile: bool) -> Tensor:
        valid = None if valid is None else valid.unsqueeze(1)
        count = student.numel() // student.shape[1] if valid is None \
            else int(valid.sum())
        sums, *lse = _run(_forward_kernel, use_compile, student, teacher,
                          in_a, valid, 1.0 / temperature)
        scale = loss_weight * temperature**2 / max(count, 1)
        factors = sums.new_tensor(weights) * scale
        ctx.save_for_backward(student, teacher, in_a, valid, factors, *lse)
        ctx.inv_t, ctx.temperature = 1.0 / temperature, temperature
        ctx.use_compile = use_compile
        return sums * factors

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        if not ctx.needs_input_grad[0]:
            return (None, ) * 8
        (student, teacher, in_a, valid, factors, lse_s_a, lse_s_b, lse_t_a,
         lse_t_b) = ctx.saved_tensors
        # d out_j / d s_i for i in group G, per unit of w0 / wG (see module
        # docstring); 1/T more for d/dz.
        w_mass, w_a, w_b = (grad_out * factors * ctx.inv_t).unbind()
        lse_s = torch.logaddexp(lse_s_a, lse_s_b)
        lse_t = torch.logaddexp(lse_t_a, lse_t_b)
        excess_a = (lse_s_a - lse_s).exp() - (lse_t_a - lse_t).exp()
        excess_b = (lse_s_b - lse_s).exp() - (lse_t_b - lse_t).exp()
        alpha_a, alpha_b = w_mass * excess_a + w_a, w_mass * excess_b + w_b
        beta_a, beta_b = w_a.expand_as(alpha_a), w_b.expand_as(alpha_b)
        if valid is not None:
            alpha_a, alpha_b, beta_a, beta_b = (
                torch.where(valid, x, 0)
                for x in (alpha_a, alpha_b, beta_a, beta_b))
        grad = _run(_backward_kernel, ctx.use_compile, student, teacher,
                    in_a, ctx.inv_t, lse_s_a, lse_s_b, lse_t_a, lse_t_b,
                    alpha_a, alpha_b, beta_a, beta_b)
        return (grad, ) + (None, ) * 7


def fused_two_group_kl(student: Tensor, teacher: Tensor, in_a: Tensor,
                       valid: Optional[Tensor], weights: Sequence[float],
                       temperature: float = 1.0, loss_weight: float = 1.0,
                       backend: str = 'auto') -> Tensor:
    """Weighted mean (mass KL, KL in A, KL in B) of ``(N, C, ...)`` logits.

    Args:
        student, teacher: logits of the same shape and floating dtype, the
            classes along dim 1 (``(N, C, H, W)`` or ``(P, C)``).
        in_a: bool mask of the same shape, True for the classes of group A;
            both groups must be non-empty at every valid position.
        valid: bool mask of the positions to average over, the shape of
            ``student`` without dim 1; None: all.
        weights: ``(w0, wA, wB)``.
        temperature, loss_weight: T (the terms carry T^2) and a multiplier.
        backend: ``'auto'``, ``'compile'`` or ``'eager'`` (module docstring).

    Returns:
        A ``(3,)`` tensor, differentiable w.r.t. ``student``.
    """
    if teacher.shape != student.shape or in_a.shape != student.shape:
        raise ValueError('student, teacher and group mask must have one '
                         f'shape, got {tuple(student.shape)}, '
                         f'{tuple(teacher.shape)} and {tuple(in_a.shape)}')
    if teacher.dtype != student.dtype:
        raise ValueError(f'student and teacher logits must have one dtype, '
                         f'got {student.dtype} and {teacher.dtype}')
    if teacher.requires_grad:
        raise ValueError('the fused loss gives no gradient to the teacher '
                         'logits: detach them, or use the plain loss '
                         '(fused=False)')
    use_compile = _use_compile(check_backend(backend), student.numel())
    return FusedTwoGroupKL.apply(student, teacher, in_a, valid,
                                 tuple(float(w) for w in weights),
                                 float(temperature), float(loss_weight),
                                 use_compile)


# ----------------------------------------------------------------------------
# GDKD / DKD terms from the raw loss inputs
# ----------------------------------------------------------------------------
def fused_gdkd_terms(student_logits: Tensor, teacher_logits: Tensor,
                     gt: Optional[Tensor], topk: int,
                     weights: Sequence[float], temperature: float,
                     loss_weight: float, ignore_index: Optional[int],
                     resize_mode: str,
                     backend: str = 'auto') -> Dict[str, Tensor]:
    """``GDKDLoss.forward_terms`` on the fused path (maps stay maps)."""
    student, teacher, _, valid = align_logits_and_labels(
        student_logits, teacher_logits, gt, ignore_index, resize_mode)
    in_top = teacher_topk_mask(teacher, topk, backend)
    high, top, other = fused_two_group_kl(student, teacher, in_top, valid,
                                          weights, temperature, loss_weight,
                                          backend)
    return dict(high=high, top=top, other=other)


def fused_dkd_terms(student: Tensor, teacher: Tensor, labels: Tensor,
                    valid: Tensor, alpha: float, beta: float,
                    temperature: float, loss_weight: float,
                    backend: str = 'auto') -> Dict[str, Tensor]:
    """``DKDLoss.forward_terms`` on aligned maps: group A is the label."""
    labels = labels.masked_fill(~valid, 0)  # any class: ignored anyway
    in_target = label_mask(labels, student.shape[1])
    tckd, _, nckd = fused_two_group_kl(student, teacher, in_target, valid,
                                       (alpha, 0.0, beta), temperature,
                                       loss_weight, backend)
    return dict(tckd=tckd, nckd=nckd)
