"""Pure tensor functions of the logit losses: alignment of logits and labels, partitions, KLs.

* :func:`align_logits_and_labels` / :func:`flatten_logits_and_labels` turn ``(N, C, H, W)`` maps or
  ``(N, C)`` logits plus labels into aligned float tensors and a validity mask (resizing, ignore_index,
  shape checks).
* :func:`topk_partition_mask` is the single definition of "the teacher's top-k classes" (used by GDKD
  and by the visualisation tools).
* :func:`grouped_kl` computes the group-mass KL and the within-group KLs for any partition of the
  classes given as integer group ids; :func:`kl_per_row` is the plain KL.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

RESIZE_MODES = ('logits', 'label')


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float32 for fp16/bf16/fp32 inputs; float64 stays float64."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _check_shapes(student: Tensor, teacher: Tensor, gt: Optional[Tensor]) -> Optional[Tensor]:
    """Validate ranks and sizes; return ``gt`` as ``(N, H', W')`` (or None)."""
    s_shape, t_shape = tuple(student.shape), tuple(teacher.shape)
    if student.dim() not in (2, 4):
        raise ValueError(f'expected student logits of shape (N, C) or (N, C, H, W), got {s_shape}')
    if teacher.dim() != student.dim():
        raise ValueError(
            f'student and teacher logits must have the same rank, got student {s_shape} and teacher {t_shape}'
        )
    if s_shape[1] != t_shape[1]:
        raise ValueError(
            f'student and teacher logits have different class counts: student {s_shape}, teacher {t_shape}'
        )
    if s_shape[0] != t_shape[0]:
        raise ValueError(f'student and teacher logits have different batch sizes: student {s_shape}, teacher {t_shape}')
    if gt is None:
        return None
    g_shape = tuple(gt.shape)
    if student.dim() == 2:
        if gt.dim() != 1:
            raise ValueError(f'(N, C) logits need (N,) class labels, got labels {g_shape} for logits {s_shape}')
        gt = gt.view(-1, 1, 1)
    else:
        gt = squeeze_label_channel(gt)
        if gt.dim() != 3:
            raise ValueError(f'(N, C, H, W) logits need (N, H, W) labels, got labels {g_shape} for logits {s_shape}')
    if gt.shape[0] != s_shape[0]:
        raise ValueError(f'labels and logits have different batch sizes: labels {g_shape}, logits {s_shape}')
    if gt.is_floating_point() or gt.is_complex():
        raise ValueError(f'labels must be an integer tensor, got {gt.dtype}')
    return gt


def squeeze_label_channel(gt: Tensor) -> Tensor:
    """MMSeg-style ``(N, 1, H, W)`` labels as ``(N, H, W)``; other shapes unchanged."""
    return gt[:, 0] if gt.dim() == 4 and gt.shape[1] == 1 else gt


def _bilinear(x: Tensor, size) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


def _nearest_labels(gt: Tensor, size) -> Tensor:
    if tuple(gt.shape[-2:]) == tuple(size):
        return gt.long()
    # float is exact for label values < 2**24
    resized = F.interpolate(gt[:, None].float(), size=size, mode='nearest')
    return resized[:, 0].long()


def align_logits_and_labels(
    student_logits: Tensor,
    teacher_logits: Tensor,
    gt: Optional[Tensor] = None,
    ignore_index: Optional[int] = 255,
    resize_mode: str = 'logits',
) -> Tuple[Tensor, Tensor, Optional[Tensor], Tensor]:
    """Bring logits and labels to one spatial size.

    Returns ``(student, teacher, labels, valid)``: ``(N, C, H, W)`` logits in the compute dtype (float32,
    or float64 for float64 inputs), ``(N, H, W)`` long labels (``None`` without ``gt``) and an
    ``(N, H, W)`` bool mask of the positions whose label is not ``ignore_index``. ``(N, C)`` inputs
    become ``(N, C, 1, 1)`` maps.

    ``resize_mode='logits'``: the teacher is resized bilinearly to the student's size and the labels by
    nearest to the same size. ``resize_mode='label'``: both logit maps are upsampled bilinearly to the
    label size.
    """
    gt = _check_shapes(student_logits, teacher_logits, gt)
    dtype = compute_dtype(student_logits, teacher_logits)
    student = student_logits.to(dtype)
    teacher = teacher_logits.to(dtype)
    if student.dim() == 2:
        student, teacher = student[..., None, None], teacher[..., None, None]

    if resize_mode == 'label' and gt is not None:
        size = tuple(gt.shape[-2:])
        student, teacher = _bilinear(student, size), _bilinear(teacher, size)
        labels = gt.long()
    else:
        size = tuple(student.shape[-2:])
        teacher = _bilinear(teacher, size)
        labels = None if gt is None else _nearest_labels(gt, size)

    if labels is None or ignore_index is None:
        valid = torch.ones(student.shape[:1] + student.shape[2:], dtype=torch.bool, device=student.device)
    else:
        valid = labels != ignore_index
    return student, teacher, labels, valid


def rows(maps: Tensor) -> Tensor:
    """``(N, C, H, W)`` -> ``(N * H * W, C)``."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def flatten_logits_and_labels(
    student_logits: Tensor,
    teacher_logits: Tensor,
    gt: Optional[Tensor] = None,
    ignore_index: Optional[int] = 255,
    resize_mode: str = 'logits',
) -> Tuple[Tensor, Tensor, Optional[Tensor], Tensor]:
    """As :func:`align_logits_and_labels`, flattened to rows.

    Returns ``(zs, zt, labels, valid)`` with ``(P, C)`` logits, ``(P,)`` labels (or ``None``) and a
    ``(P,)`` bool mask, ``P = N * H * W`` (``P = N`` for ``(N, C)`` inputs).
    """
    student, teacher, labels, valid = align_logits_and_labels(
        student_logits, teacher_logits, gt, ignore_index, resize_mode
    )
    labels = None if labels is None else labels.reshape(-1)
    return rows(student), rows(teacher), labels, valid.reshape(-1)


def check_label_bounds(lowest, highest, num_classes: int, ignore_index: Optional[int], method: str) -> None:
    """The smallest and largest label counted in the loss must name classes: ``0 <= label < C``."""
    if lowest < 0 or highest >= num_classes:
        raise ValueError(
            f'{method} labels must lie in [0, {num_classes}) outside ignore_index={ignore_index}, '
            f'got values in [{int(lowest)}, {int(highest)}]: are the annotations in train ids (e.g. Cityscapes '
            "*_labelTrainIds.png) and is num_classes the data set's?"
        )


def check_labels_in_range(
    labels: Tensor, valid: Tensor, num_classes: int, ignore_index: Optional[int], method: str
) -> None:
    """Every label counted in the loss must name a class (the fused kernels find the bounds in their own
    pass and call :func:`check_label_bounds`)."""
    if labels.numel() == 0:
        return
    lowest, highest = torch.aminmax(torch.where(valid, labels, 0))  # 0 is a class: the ignored do not count
    check_label_bounds(lowest, highest, num_classes, ignore_index, method)


def mean_or_zero(values: Tensor, count: int) -> Tensor:
    """Sum / count; an empty selection gives a 0 that is still in the graph."""
    return values.sum() / max(count, 1)


def topk_partition_mask(teacher_logits: Tensor, k: int, dim: int = 1) -> Tensor:
    """Bool mask, True on the teacher's ``k`` largest logits along ``dim``.

    Works on ``(P, C)`` rows and on ``(N, C, H, W)`` maps (``dim=1``); ties are broken exactly as
    :func:`torch.topk` breaks them.
    """
    index = teacher_logits.detach().topk(k, dim=dim).indices
    mask = torch.zeros_like(teacher_logits, dtype=torch.bool)
    return mask.scatter_(dim, index, True)


def _group_logsumexp(logits: Tensor, group_ids: Tensor, num_groups: int, nonempty: Tensor) -> Tensor:
    """``(P, G)`` logsumexp of ``logits`` over each group's classes.

    Empty groups get 0 (a finite placeholder the callers mask out); a group whose logits are all -inf (a
    masked class) gets -inf. No NaN is formed on the way, so none reaches the gradient.
    """
    num_rows = logits.shape[0]
    # The max is only a shift for stability; its gradient cancels exactly.
    group_max = logits.new_full((num_rows, num_groups), float('-inf'))
    group_max = group_max.scatter_reduce(1, group_ids, logits.detach(), reduce='amax', include_self=True)
    group_max = torch.where(nonempty & torch.isfinite(group_max), group_max, torch.zeros_like(group_max))
    shifted = logits - group_max.gather(1, group_ids)
    sums = logits.new_zeros(num_rows, num_groups).scatter_add(1, group_ids, shifted.exp())
    sums = torch.where(nonempty, sums, torch.ones_like(sums))
    return group_max + sums.log()


def _xlogy_ratio(p: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """``p (log p - log q)`` with ``0 log 0 = 0``: where the teacher puts no mass (``-inf`` logits, a masked
    class) the term is 0, and so is its gradient w.r.t. the student's ``log q``."""
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))


def grouped_kl(
    student_logits: Tensor, teacher_logits: Tensor, group_ids: Tensor, num_groups: int, temperature: float = 1.0
) -> Tuple[Tensor, Tensor]:
    """KL between group masses and within each group, per row.

    Args:
        student_logits, teacher_logits: ``(P, C)`` logits.
        group_ids: ``(P, C)`` integer tensor, the group of each class (values in ``[0, num_groups)``);
            groups may differ per row and may be empty.
        num_groups: G.
        temperature: T, applied as ``z / T``.

    Returns:
        ``mass_kl`` ``(P,)``: KL(b_t || b_s) of the G group masses
        ``b = (sum_{i in g} softmax(z/T)_i)_g``, and ``within_kl`` ``(P, G)``: KL(q_t^g || q_s^g) of the
        softmaxes restricted to each group (0 for an empty group). Not multiplied by T^2.
    """
    group_ids = group_ids.long()
    ls = student_logits / temperature
    lt = teacher_logits / temperature
    counts = torch.zeros(ls.shape[0], num_groups, dtype=ls.dtype, device=ls.device).scatter_add_(
        1, group_ids, torch.ones_like(ls)
    )
    nonempty = counts > 0

    lse_s = _group_logsumexp(ls, group_ids, num_groups, nonempty)
    lse_t = _group_logsumexp(lt, group_ids, num_groups, nonempty)

    # log group masses: log b_g = lse_g - lse_all (-inf for a teacher group of masked classes)
    log_bs = lse_s - ls.logsumexp(dim=1, keepdim=True)
    log_bt = lse_t - lt.logsumexp(dim=1, keepdim=True)
    mass_terms = _xlogy_ratio(log_bt.exp(), log_bt, log_bs)
    mass_kl = torch.where(nonempty, mass_terms, torch.zeros_like(mass_terms)).sum(dim=1)

    # within-group log-softmax: z_i/T - lse_{g(i)}; a teacher group without mass has no distribution
    # (its KL is 0): its lse is replaced by 0 so that its q_t is 0, not NaN
    lse_t = torch.where(torch.isfinite(lse_t), lse_t, torch.zeros_like(lse_t))
    log_qs = ls - lse_s.gather(1, group_ids)
    log_qt = lt - lse_t.gather(1, group_ids)
    class_terms = _xlogy_ratio(log_qt.exp(), log_qt, log_qs)
    within_kl = torch.zeros_like(counts).scatter_add(1, group_ids, class_terms)
    return mass_kl, within_kl


def kl_per_row(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0, dim: int = 1) -> Tensor:
    """KL(softmax(z_t/T) || softmax(z_s/T)) along ``dim`` (no T^2)."""
    log_ps = F.log_softmax(student_logits / temperature, dim=dim)
    log_pt = F.log_softmax(teacher_logits / temperature, dim=dim)
    return _xlogy_ratio(log_pt.exp(), log_pt, log_ps).sum(dim=dim)
