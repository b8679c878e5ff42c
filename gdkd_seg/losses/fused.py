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

so :class:`FusedTwoGroupKL` keeps only its inputs, the partition (one
threshold or label per position), four ``lse`` values and two
``b_s,G - b_t,G`` per position for the backward, instead of the chain of ``(P, C)`` intermediates autograd
would keep. It reduces along dim 1 of ``(N, C, H, W)`` maps (no permute) or
of ``(P, C)`` rows. GDKD's top-k group is the set of classes at or above the
teacher's k-th largest logit; the rare positions where ties cross that
boundary are computed by the plain code (:func:`grouped_kl` on
:func:`topk_partition_mask`) inside the same Function.

The kernels are plain torch code. ``backend='compile'`` runs them through
``torch.compile`` (Inductor: C++/OpenMP loops on CPU, Triton on GPU), which
turns the forward into one parallel pass over the positions (for each: the
k max-reductions of the threshold, the group maxima, the group sums) and the
backward into one elementwise pass; ``'eager'`` runs them as
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

from .functional import check_label_bounds, grouped_kl, topk_partition_mask

# Smaller inputs run eager: compiling costs seconds once and saves little.
COMPILE_MIN_NUMEL = 1 << 20
BACKENDS = ('auto', 'compile', 'eager')
NEG_INF = float('-inf')
LOG2_E = 1.4426950408889634

_compiled = {}
_compile_failed = False


# ----------------------------------------------------------------------------
# kernels (pure torch; reductions along dim 1, keepdim; no bool tensors in
# or out, since Inductor's CPU code stores bool masks slowly)
# ----------------------------------------------------------------------------
def _topk_partition_kernel(teacher: Tensor, k: int, valid: Optional[Tensor]) -> Tuple[Tensor, ...]:
    """GDKD's partition and position bookkeeping in one compiled call:
    ``kth`` (the k-th largest distinct value along dim 1), ``include`` (1.0
    at the valid positions where exactly k classes reach ``kth``), ``tied``
    (1.0 at the valid others: ties across the top-k boundary), and the
    numbers of valid and of tied positions. Float outputs only: Inductor's
    CPU code writes bool tensors slowly."""
    kth = teacher.amax(1, keepdim=True)
    for _ in range(k - 1):
        kth = torch.where(teacher < kth, teacher, NEG_INF).amax(1, keepdim=True)
    count = (teacher >= kth).to(teacher.dtype).sum(1, keepdim=True)
    valid = torch.ones_like(kth) if valid is None else valid.to(kth.dtype)
    tied = torch.where(count != k, valid, 0)
    return kth, valid - tied, tied, valid.sum(), tied.sum()


def _label_partition_kernel(labels: Tensor, valid: Optional[Tensor], dtype: torch.dtype) -> Tuple[Tensor, ...]:
    """DKD's partition and bookkeeping: the labels as int32 (0 where not valid; int32 compares vectorize
    as wide as float32), ``include`` (1.0 where valid), the number of valid positions, and the smallest and
    largest valid label (their range is checked on the way, for free)."""
    if valid is None:
        valid = torch.ones_like(labels, dtype=torch.bool)
    include = valid.to(dtype)
    counted = torch.where(valid, labels, 0)  # out of range: no class matches, and forward raises
    return counted.to(torch.int32), include, include.sum(), counted.min(), counted.max()


def _in_group_a(zt: Tensor, partition: Tensor) -> Tensor:
    """Group A: ``zt >= partition`` (a per-position threshold) or the class
    ``partition`` (a per-position integer label)."""
    if partition.is_floating_point():
        return zt >= partition
    classes = torch.arange(zt.shape[1], device=zt.device, dtype=partition.dtype)
    return classes.view(-1, *[1] * (zt.dim() - 2)) == partition


def _group_max(x: Tensor, in_a: Tensor) -> Tuple[Tensor, Tensor]:
    return (torch.where(in_a, x, NEG_INF).amax(1, keepdim=True), torch.where(in_a, NEG_INF, x).amax(1, keepdim=True))


def _group_sum(x: Tensor, in_a: Tensor) -> Tuple[Tensor, Tensor]:
    return (torch.where(in_a, x, 0).sum(1, keepdim=True), torch.where(in_a, 0, x).sum(1, keepdim=True))


def _exp(x: Tensor) -> Tensor:
    if not torch.compiler.is_compiling():
        return x.exp()
    # Compiled, exp2 rather than exp: Inductor's CPU heuristics store a
    # reused exp() to a full (N, C, H, W) buffer, but recompute a reused
    # exp2() inside the one fused loop. Rounding x * log2(e) costs < 1e-6
    # relative for the x in [-20, 0] that matter.
    return torch.exp2(x * LOG2_E)


def _two_group_stats(zs: Tensor, zt: Tensor, partition: Tensor, include: Tensor, inv_t: float) -> Tuple[Tensor, ...]:
    """Sums of (mass KL, KL in A, KL in B) over the positions where
    ``include`` (0/1 float) is 1; per position ``(N, 1, ...)``: ``lse`` of s
    and t over A and over B, and ``b_s,G - b_t,G`` for G = A, B."""
    in_a = _in_group_a(zt, partition)
    s, t = zs * inv_t, zt * inv_t
    ms_a, ms_b = _group_max(s, in_a)
    # -inf teacher logits (masked classes) are legitimate: a group of only such classes has no teacher
    # mass (st = 0); its max is taken as 0 so that no -inf - -inf forms, and its terms are 0 (below).
    mt_a, mt_b = (torch.where(m > NEG_INF, m, 0) for m in _group_max(t, in_a))
    xs = s - torch.where(in_a, ms_a, ms_b)  # <= 0, 0 at each group's max
    xt = t - torch.where(in_a, mt_a, mt_b)
    et = _exp(xt)
    ss_a, ss_b = _group_sum(_exp(xs), in_a)
    st_a, st_b = _group_sum(et, in_a)
    d_a, d_b = _group_sum(torch.where(et > 0, et * (xt - xs), 0), in_a)

    log_ss_a, log_ss_b = ss_a.log(), ss_b.log()
    log_st_a, log_st_b = st_a.log(), st_b.log()
    lse_s_a, lse_s_b = ms_a + log_ss_a, ms_b + log_ss_b
    lse_t_a, lse_t_b = mt_a + log_st_a, mt_b + log_st_b  # -inf for a group without teacher mass
    lse_s = torch.logaddexp(lse_s_a, lse_s_b)
    lse_t = torch.logaddexp(lse_t_a, lse_t_b)
    log_bs_a, log_bs_b = lse_s_a - lse_s, lse_s_b - lse_s
    log_bt_a, log_bt_b = lse_t_a - lse_t, lse_t_b - lse_t
    bt_a, bt_b = log_bt_a.exp(), log_bt_b.exp()
    mass = torch.where(bt_a > 0, bt_a * (log_bt_a - log_bs_a), 0) + torch.where(
        bt_b > 0, bt_b * (log_bt_b - log_bs_b), 0
    )
    kl_a = torch.where(st_a > 0, d_a / st_a - log_st_a + log_ss_a, 0)
    kl_b = torch.where(st_b > 0, d_b / st_b - log_st_b + log_ss_b, 0)
    mass, kl_a, kl_b = (torch.where(include > 0, x, 0) for x in (mass, kl_a, kl_b))
    sums = torch.stack([mass.sum(), kl_a.sum(), kl_b.sum()])
    return (sums, lse_s_a, lse_s_b, lse_t_a, lse_t_b, log_bs_a.exp() - bt_a, log_bs_b.exp() - bt_b)


def _forward_kernel(
    zs: Tensor, zt: Tensor, topk: Optional[int], labels: Optional[Tensor], valid: Optional[Tensor], inv_t: float
) -> Tuple[Optional[Tensor], ...]:
    """Partition and statistics in one compiled call. Group A is the teacher's ``topk`` classes (GDKD) or
    the class of ``labels`` (DKD, integer ``(N, 1, ...)``, valid wherever ``valid``); ``valid``: bool
    ``(N, 1, ...)`` or None.

    Returns ``(stats, partition, include, num_valid, tied, num_tied, label_bounds)``:
    :func:`_two_group_stats`; the threshold (top-k) or int32 labels used; the 0/1 positions counted and
    their number; for top-k, the 0/1 positions with ties across the boundary (left out of ``include``) and
    their number; for labels, the smallest and largest valid label. Not applicable entries are None."""
    tied = num_tied = label_bounds = None
    if labels is None:
        partition, include, tied, num_valid, num_tied = _topk_partition_kernel(zt, topk, valid)
    else:
        partition, include, num_valid, lowest, highest = _label_partition_kernel(labels, valid, zs.dtype)
        label_bounds = (lowest, highest)
    stats = _two_group_stats(zs, zt, partition, include, inv_t)
    return stats, partition, include, num_valid, tied, num_tied, label_bounds


def _backward_kernel(
    zs: Tensor,
    zt: Tensor,
    partition: Tensor,
    include: Tensor,
    inv_t: float,
    lse_s_a: Tensor,
    lse_s_b: Tensor,
    lse_t_a: Tensor,
    lse_t_b: Tensor,
    excess_a: Tensor,
    excess_b: Tensor,
    weights: Tensor,
) -> Tensor:
    """``alpha_G q_s - beta_G q_t`` elementwise, G the group of each class,
    ``alpha_G = w_mass (b_s,G - b_t,G) + w_G``, ``beta_G = w_G``; 0 where
    ``include`` is 0. A group without teacher mass (``lse_t = -inf``) has no
    within-group term: ``w_G`` is 0 there."""
    w_mass, w_a, w_b = weights.unbind()
    in_a = _in_group_a(zt, partition)
    lse_t = torch.where(in_a, lse_t_a, lse_t_b)
    with_mass = lse_t > NEG_INF
    qs = _exp(zs * inv_t - torch.where(in_a, lse_s_a, lse_s_b))
    qt = torch.where(with_mass, _exp(zt * inv_t - lse_t), 0)
    w_group = torch.where(with_mass, torch.where(in_a, w_a, w_b), 0)
    grad = (w_mass * torch.where(in_a, excess_a, excess_b) + w_group) * qs - w_group * qt
    return torch.where(include > 0, grad, 0)


def _tied_row_sums(zs: Tensor, zt: Tensor, topk: int, temperature: float) -> Tensor:
    """(mass KL, KL in A, KL in B) summed over ``(R, C)`` rows, partition
    by :func:`topk_partition_mask` (the plain loss's own code)."""
    group_ids = (~topk_partition_mask(zt, topk, dim=1)).long()
    mass_kl, within_kl = grouped_kl(zs, zt, group_ids, 2, temperature)
    return torch.cat([mass_kl.sum(0, keepdim=True), within_kl.sum(0)])


# ----------------------------------------------------------------------------
# backend selection
# ----------------------------------------------------------------------------
def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f'fused backend must be one of {BACKENDS}, got {backend!r}')
    return backend


def _use_compile(backend: str, numel: int) -> bool:
    if backend == 'eager' or _compile_failed:
        return False
    if backend == 'compile':
        return True
    return numel >= COMPILE_MIN_NUMEL and os.environ.get('GDKD_SEG_COMPILE', '1') != '0'


def _run(kernel, use_compile: bool, *args):
    """``kernel(*args)``, through torch.compile when asked and possible."""
    global _compile_failed
    if use_compile and not _compile_failed:
        if kernel not in _compiled:
            # A higher realize_reads_threshold keeps Inductor from storing
            # the shifted logits (which read 5 inputs) to full-size buffers.
            _compiled[kernel] = torch.compile(kernel, dynamic=True, options=dict(realize_reads_threshold=64))
        try:
            return _compiled[kernel](*args)
        except Exception as err:  # no C++ compiler, unsupported platform...
            _compile_failed = True
            warnings.warn(
                'gdkd_seg fused losses: torch.compile failed, running the '
                f'fused kernels eagerly from now on ({type(err).__name__}: '
                f'{str(err).splitlines()[0] if str(err) else ""}). Set '
                'GDKD_SEG_COMPILE=0 to skip the attempt.'
            )
    return kernel(*args)


# ----------------------------------------------------------------------------
# the autograd Function
# ----------------------------------------------------------------------------
def topk_threshold(teacher_logits: Tensor, k: int, backend: str = 'auto') -> Tuple[Tensor, Tensor]:
    """The teacher's top-k classes as a threshold: ``(kth, tied)``, for ``1 <= k < C``.

    ``kth`` ``(N, ...)``: class i of a position is in the top group iff ``teacher_i >= kth``, which is
    :func:`~gdkd_seg.losses.functional.topk_partition_mask`'s partition wherever ``tied`` ``(N, ...)`` is
    False. Where it is True, ties across the top-k boundary make more than k classes reach ``kth``; only
    ``torch.topk``'s tie breaking decides there. Costs k max-reductions instead of a sort.
    """
    teacher = teacher_logits.detach()
    kth, _, tied, _, _ = _run(
        _topk_partition_kernel, _use_compile(check_backend(backend), teacher.numel()), teacher, k, None
    )
    return kth.squeeze(1), tied.squeeze(1) > 0


class FusedTwoGroupKL(torch.autograd.Function):
    """``(3,)`` tensor ``loss_weight * T^2 / count * (w0, wA, wB) * sums of (KL(b_t||b_s), KL(q_t^A||q_s^A),
    KL(q_t^B||q_s^B))`` over the valid positions (``count`` of them); differentiable w.r.t. the student
    logits only.

    Group A is the teacher's ``topk`` largest classes (GDKD; a threshold, with the positions whose ties
    cross it computed by the plain :func:`grouped_kl` on :func:`topk_partition_mask`), or, with
    ``labels`` (integer ``(N, 1, ...)``, in ``[0, C)`` wherever valid), the label's class (DKD).
    ``valid``: bool ``(N, 1, ...)`` or None (all). ``label_check`` ``(ignore_index, method)``: labels outside
    ``[0, C)`` at valid positions raise :func:`check_label_bounds`'s error.
    """

    @staticmethod
    def forward(
        ctx,
        student: Tensor,
        teacher: Tensor,
        topk: Optional[int],
        labels: Optional[Tensor],
        valid: Optional[Tensor],
        weights: Tuple[float, float, float],
        temperature: float,
        loss_weight: float,
        use_compile: bool,
        label_check: Tuple = (None, 'DKD'),
    ) -> Tensor:
        stats, partition, include, num_valid, tied, num_tied, label_bounds = _run(
            _forward_kernel, use_compile, student, teacher, topk, labels, valid, 1.0 / temperature
        )
        if label_bounds is not None and num_valid > 0:
            check_label_bounds(*label_bounds, student.shape[1], *label_check)
        sums, *per_position = stats
        if tied is not None and num_tied > 0:
            tied = tied.squeeze(1) > 0
            sums = sums + _tied_row_sums(student.movedim(1, -1)[tied], teacher.movedim(1, -1)[tied], topk, temperature)
        else:
            tied = None
        factors = sums.new_tensor(weights) * (loss_weight * temperature**2 / max(int(num_valid), 1))
        ctx.save_for_backward(student, teacher, partition, include, factors, tied, *per_position)
        ctx.temperature, ctx.use_compile, ctx.topk = temperature, use_compile, topk
        return sums * factors

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        nones = (None,) * 9
        if not ctx.needs_input_grad[0]:
            return (None,) + nones
        student, teacher, partition, include, factors, tied, *per_position = ctx.saved_tensors
        # d out / d s_i = w_mass (p_s,i - b_t,G q_s,i) + w_G (q_s,i - q_t,i)
        #               = (w_mass (b_s,G - b_t,G) + w_G) q_s,i - w_G q_t,i
        # for class i in group G; and d s / d z = 1/T.
        inv_t = 1.0 / ctx.temperature
        grad = _run(
            _backward_kernel,
            ctx.use_compile,
            student,
            teacher,
            partition,
            include,
            inv_t,
            *per_position,
            grad_out * factors * inv_t,
        )
        if tied is not None:
            tied_rows = student.movedim(1, -1)[tied].detach().requires_grad_()
            with torch.enable_grad():
                sums = _tied_row_sums(tied_rows, teacher.movedim(1, -1)[tied], ctx.topk, ctx.temperature)
                (row_grad,) = torch.autograd.grad((sums * grad_out * factors).sum(), tied_rows)
            grad.movedim(1, -1).index_put_((tied,), row_grad, accumulate=True)
        return (grad,) + nones


def _apply(
    student: Tensor,
    teacher: Tensor,
    topk: Optional[int],
    labels: Optional[Tensor],
    valid: Optional[Tensor],
    weights: Sequence[float],
    temperature: float,
    loss_weight: float,
    backend: str,
    label_check: Tuple = (None, 'DKD'),
) -> Tensor:
    if teacher.shape != student.shape or teacher.dtype != student.dtype:
        raise ValueError(
            'expected student and teacher logits of one shape and dtype, got '
            f'{tuple(student.shape)} {student.dtype} and {tuple(teacher.shape)} {teacher.dtype}'
        )
    if teacher.requires_grad:
        raise ValueError(
            'the fused loss gives no gradient to the teacher logits: detach them, or use the plain loss (fused=False)'
        )
    return FusedTwoGroupKL.apply(
        student,
        teacher,
        topk,
        None if labels is None else labels.unsqueeze(1),
        None if valid is None else valid.unsqueeze(1),
        tuple(float(w) for w in weights),
        float(temperature),
        float(loss_weight),
        _use_compile(check_backend(backend), student.numel()),
        label_check,
    )


def fused_gdkd_terms(
    student: Tensor,
    teacher: Tensor,
    valid: Optional[Tensor],
    topk: int,
    weights: Sequence[float],
    temperature: float = 1.0,
    loss_weight: float = 1.0,
    backend: str = 'auto',
) -> Dict[str, Tensor]:
    """GDKD's ``{'high', 'top', 'other'}`` on aligned logits of one shape and dtype, classes along dim 1
    (``(N, C, H, W)`` maps or ``(P, C)`` rows); ``valid``: bool, their shape without dim 1, or None;
    ``1 <= topk < C``; ``weights`` = ``(w0, w1, w2)``; ``backend``: ``'auto'``, ``'compile'`` or
    ``'eager'`` (module docstring)."""
    high, top, other = _apply(
        student, teacher, int(topk), None, valid, weights, temperature, loss_weight, backend
    ).unbind()
    return dict(high=high, top=top, other=other)


def fused_dkd_terms(
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    valid: Optional[Tensor],
    alpha: float,
    beta: float,
    temperature: float = 1.0,
    loss_weight: float = 1.0,
    backend: str = 'auto',
    ignore_index: Optional[int] = None,
) -> Dict[str, Tensor]:
    """DKD's ``{'tckd', 'nckd'}`` on aligned logits (as :func:`fused_gdkd_terms`): group A is the label,
    which must lie in ``[0, C)`` wherever ``valid`` (a ValueError otherwise; ``ignore_index`` only serves
    its message)."""
    tckd, _, nckd = _apply(
        student,
        teacher,
        None,
        labels,
        valid,
        (alpha, 0.0, beta),
        temperature,
        loss_weight,
        backend,
        (ignore_index, 'DKD'),
    ).unbind()
    return dict(tckd=tckd, nckd=nckd)
