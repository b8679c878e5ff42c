"""Shared plumbing for the logit-distillation losses.

* :func:`align_logits_and_labels` / :func:`flatten_logits_and_labels` turn
  ``(N, C, H, W)`` maps or ``(N, C)`` logits plus labels into aligned float
  tensors and a validity mask (resizing, ignore_index, shape checks).
* :func:`topk_partition_mask` is the single definition of "the teacher's
  top-k classes" (used by GDKD and by the visualisation tools).
* :func:`grouped_kl` computes the group-mass KL and the within-group KLs for
  any partition of the classes given as integer group ids.
"""
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

RESIZE_MODES = ('logits', 'label')


# ----------------------------------------------------------------------------
# argument checks shared by the loss constructors
# ----------------------------------------------------------------------------
def check_positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f'{name} must be > 0, got {value!r}')
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f'{name} must be >= 0, got {value!r}')
    return float(value)


def check_topk(topk: int) -> int:
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f'topk must be an integer >= 1, got {topk!r}')
    return topk


def check_topk_below_classes(method: str, topk: int, student_logits: Tensor,
                             teacher_logits: Tensor) -> None:
    num_classes = student_logits.shape[1]
    if topk >= num_classes:
        raise ValueError(
            f'{method} needs topk < C, got topk={topk} for student logits '
            f'{tuple(student_logits.shape)} and teacher logits '
            f'{tuple(teacher_logits.shape)} (C={num_classes})')


def check_resize_mode(resize_mode: str) -> str:
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f'resize_mode must be one of {RESIZE_MODES}, '
                         f'got {resize_mode!r}')
    return resize_mode


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float32 for fp16/bf16/fp32 inputs; float64 stays float64."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


# ----------------------------------------------------------------------------
# flattening / resizing / ignore handling
# ----------------------------------------------------------------------------
def _check_shapes(student: Tensor, teacher: Tensor,
                  gt: Optional[Tensor]) -> Optional[Tensor]:
    """Validate ranks and sizes; return ``gt`` as ``(N, H', W')`` (or None)."""
    s_shape, t_shape = tuple(student.shape), tuple(teacher.shape)
    if student.dim() not in (2, 4):
        raise ValueError('expected student logits of shape (N, C) or '
                         f'(N, C, H, W), got {s_shape}')
    if teacher.dim() != student.dim():
        raise ValueError('student and teacher logits must have the same rank, '
                         f'got student {s_shape} and teacher {t_shape}')
    if s_shape[1] != t_shape[1]:
        raise ValueError('student and teacher logits have different class '
                         f'counts: student {s_shape}, teacher {t_shape}')
    if s_shape[0] != t_shape[0]:
        raise ValueError('student and teacher logits have different batch '
                         f'sizes: student {s_shape}, teacher {t_shape}')
    if gt is None:
        return None
    g_shape = tuple(gt.shape)
    if student.dim() == 2:
        if gt.dim() != 1:
            raise ValueError('(N, C) logits need (N,) class labels, got '
                             f'labels {g_shape} for logits {s_shape}')
        gt = gt.view(-1, 1, 1)
    else:
        if gt.dim() == 4 and g_shape[1] == 1:  # mmseg-style (N, 1, H, W)
            gt = gt[:, 0]
        if gt.dim() != 3:
            raise ValueError('(N, C, H, W) logits need (N, H, W) labels, got '
                             f'labels {g_shape} for logits {s_shape}')
    if gt.shape[0] != s_shape[0]:
        raise ValueError('labels and logits have different batch sizes: '
                         f'labels {g_shape}, logits {s_shape}')
    if gt.is_floating_point() or gt.is_complex():
        raise ValueError(f'labels must be an integer tensor, got {gt.dtype}')
    return gt


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

    Returns ``(student, teacher, labels, valid)``: ``(N, C, H, W)`` logits in
    the compute dtype (float32, or float64 for float64 inputs), ``(N, H, W)``
    long labels (``None`` without ``gt``) and an ``(N, H, W)`` bool mask of
    the positions whose label is not ``ignore_index``. ``(N, C)`` inputs
    become ``(N, C, 1, 1)`` maps.

    ``resize_mode='logits'``: the teacher is resized bilinearly to the
    student's size and the labels by nearest to the same size.
    ``resize_mode='label'``: both logit maps are upsampled bilinearly to the
    label size.
    """
    check_resize_mode(resize_mode)
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
        valid = torch.ones(student.shape[:1] + student.shape[2:],
                           dtype=torch.bool, device=student.device)
    else:
        valid = labels != ignore_index
    return student, teacher, labels, valid


def flatten_logits_and_labels(
    student_logits: Tensor,
    teacher_logits: Tensor,
    gt: Optional[Tensor] = None,
    ignore_index: Optional[int] = 255,
    resize_mode: str = 'logits',
) -> Tuple[Tensor, Tensor, Optional[Tensor], Tensor]:
    """As :func:`align_logits_and_labels`, flattened to rows.

    Returns ``(zs, zt, labels, valid)`` with ``(P, C)`` logits, ``(P,)``
    labels (or ``None``) and a ``(P,)`` bool mask, ``P = N * H * W``
    (``P = N`` for ``(N, C)`` inputs).
    """
    student, teacher, labels, valid = align_logits_and_labels(
        student_logits, teacher_logits, gt, ignore_index, resize_mode)
    num_classes = student.shape[1]
    zs = student.permute(0, 2, 3, 1).reshape(-1, num_classes)
    zt = teacher.permute(0, 2, 3, 1).reshape(-1, num_classes)
    labels = None if labels is None else labels.reshape(-1)
    return zs, zt, labels, valid.reshape(-1)


def masked_mean(values: Tensor, count: int) -> Tensor:
    """Sum / count; an empty selection gives a 0 that is still in the graph."""
    return values.sum() / max(count, 1)


# ----------------------------------------------------------------------------
# partitions and grouped KL
# ----------------------------------------------------------------------------
def topk_partition_mask(teacher_logits: Tensor, k: int,
                        dim: int = 1) -> Tensor:
    """Bool mask, True on the teacher's ``k`` largest logits along ``dim``.

    Works on ``(P, C)`` rows (``dim=1``) and on ``(N, C, H, W)`` maps
    (``dim=1``); ties are broken exactly as :func:`torch.topk` breaks them.
    """
    num_classes = teacher_logits.shape[dim]
    if not 1 <= k <= num_classes:
        raise ValueError(f'k must be in [1, {num_classes}] for teacher '
                         f'logits of shape {tuple(teacher_logits.shape)} '
                         f'(dim={dim}), got k={k}')
    index = teacher_logits.detach().topk(k, dim=dim).indices
    mask = torch.zeros_like(teacher_logits, dtype=torch.bool)
    return mask.scatter_(dim, index, True)


def _group_logsumexp(logits: Tensor, group_ids: Tensor, num_groups: int,
                     nonempty: Tensor) -> Tensor:
    """``(P, G)`` logsumexp of ``logits`` over each group's classes.

    Empty groups get 0 (a finite placeholder the callers mask out); all
    intermediate values stay finite so that no NaN reaches the gradient.
    """
    rows = logits.shape[0]
    # The max is only a shift for stability; its gradient cancels exactly.
    group_max = logits.new_full((rows, num_groups), float('-inf'))
    group_max = group_max.scatter_reduce(
        1, group_ids, logits.detach(), reduce='amax', include_self=True)
    group_max = torch.where(nonempty, group_max, torch.zeros_like(group_max))
    shifted = logits - group_max.gather(1, group_ids)
    sums = logits.new_zeros(rows, num_groups).scatter_add(
        1, group_ids, shifted.exp())
    sums = torch.where(nonempty, sums, torch.ones_like(sums))
    return group_max + sums.log()


def grouped_kl(student_logits: Tensor, teacher_logits: Tensor,
               group_ids: Tensor, num_groups: int,
               temperature: float = 1.0) -> Tuple[Tensor, Tensor]:
    """KL between group masses and within each group, per row.

    Args:
        student_logits, teacher_logits: ``(P, C)`` logits.
        group_ids: ``(P, C)`` integer tensor, the group of each class
            (values in ``[0, num_groups)``); groups may differ per row and
            may be empty.
        num_groups: G.
        temperature: T, applied as ``z / T``.

    Returns:
        ``mass_kl`` ``(P,)``: KL(b_t || b_s) of the G group masses
        ``b = (sum_{i in g} softmax(z/T)_i)_g``, and ``within_kl`` ``(P, G)``:
        KL(q_t^g || q_s^g) of the softmaxes restricted to each group
        (0 for an empty group). Not multiplied by T^2.
    """
    if group_ids.shape != student_logits.shape:
        raise ValueError(f'group_ids shape {tuple(group_ids.shape)} does not '
                         f'match logits {tuple(student_logits.shape)}')
    group_ids = group_ids.long()
    ls = student_logits / temperature
    lt = teacher_logits / temperature
    counts = torch.zeros(ls.shape[0], num_groups, dtype=ls.dtype,
                         device=ls.device).scatter_add_(
                             1, group_ids, torch.ones_like(ls))
    nonempty = counts > 0

    lse_s = _group_logsumexp(ls, group_ids, num_groups, nonempty)
    lse_t = _group_logsumexp(lt, group_ids, num_groups, nonempty)

    # log group masses: log b_g = lse_g - lse_all; finite everywhere
    log_bs = lse_s - ls.logsumexp(dim=1, keepdim=True)
    log_bt = lse_t - lt.logsumexp(dim=1, keepdim=True)
    mass_terms = log_bt.exp() * (log_bt - log_bs)
    mass_kl = torch.where(nonempty, mass_terms,
                          torch.zeros_like(mass_terms)).sum(dim=1)

    # within-group log-softmax: z_i/T - lse_{g(i)}
    log_qs = ls - lse_s.gather(1, group_ids)
    log_qt = lt - lse_t.gather(1, group_ids)
    class_terms = log_qt.exp() * (log_qt - log_qs)
    within_kl = torch.zeros_like(counts).scatter_add(1, group_ids,
                                                     class_terms)
    return mass_kl, within_kl


def kl_per_row(student_logits: Tensor, teacher_logits: Tensor,
               temperature: float = 1.0, dim: int = 1) -> Tensor:
    """KL(softmax(z_t/T) || softmax(z_s/T)) along ``dim`` (no T^2)."""
    log_ps = F.log_softmax(student_logits / temperature, dim=dim)
    log_pt = F.log_softmax(teacher_logits / temperature, dim=dim)
    return (log_pt.exp() * (log_pt - log_ps)).sum(dim=dim)


# ----------------------------------------------------------------------------
# tiny base class: argument storage, alignment, forward = sum of terms
# ----------------------------------------------------------------------------
def build_teacher_scaling(
        cfg: Optional[Union[dict, nn.Module]]) -> Optional[nn.Module]:
    """A transform of the teacher's logits from its config dict (``type``
    defaults to ``'TopKScaling'``); a module is used as it is."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    if isinstance(cfg, dict):
        return MODELS.build(dict(dict(type='TopKScaling'), **cfg))
    raise TypeError('teacher_scaling must be None, a config dict such as '
                    "dict(type='TopKScaling', k=5) or an nn.Module, got "
                    f'{type(cfg).__name__}')


class LogitDistillLoss(nn.Module):
    """Common plumbing; subclasses implement :meth:`forward_terms`."""

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss',
                 ignore_index: Optional[int] = 255,
                 resize_mode: str = 'logits',
                 teacher_scaling: Optional[Union[dict, nn.Module]] = None):
        super().__init__()
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self.ignore_index = ignore_index
        self.resize_mode = check_resize_mode(resize_mode)
        self._loss_name = loss_name
        self.teacher_scaling = build_teacher_scaling(teacher_scaling)

    def flatten(self, student_logits: Tensor, teacher_logits: Tensor,
                gt: Optional[Tensor] = None):
        """Valid ``(P, C)`` rows of both logits and their ``(P,)`` labels.

        The teacher rows come out of ``teacher_scaling`` when one is set.
        """
        zs, zt, labels, valid = flatten_logits_and_labels(
            student_logits, teacher_logits, gt, self.ignore_index,
            self.resize_mode)
        labels = None if labels is None else labels[valid]
        return zs[valid], self.scale_teacher(zt[valid], labels), labels

    def scale_teacher(self, teacher_rows: Tensor,
                      labels: Optional[Tensor] = None) -> Tensor:
        """``teacher_scaling(rows, labels)``, or the rows themselves."""
        if self.teacher_scaling is None:
            return teacher_rows
        return self.teacher_scaling(teacher_rows, labels)

    def weighted_means(self, per_position: Dict[str, Tensor]
                       ) -> Dict[str, Tensor]:
        """``loss_weight`` x mean over the rows of each ``(P,)`` term."""
        return {
            name: self.loss_weight * masked_mean(value, value.shape[0])
            for name, value in per_position.items()
        }

    def forward_terms(self, student_logits: Tensor, teacher_logits: Tensor,
                      gt: Optional[Tensor] = None) -> Dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                gt: Optional[Tensor] = None) -> Tensor:
        terms = self.forward_terms(student_logits, teacher_logits, gt)
        return sum(terms.values())

    @property
    def loss_name(self) -> str:
        """Loss name, the key under which mmseg logs this loss.

        Returns:
            str: The name of this loss item.
        """
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'loss_weight={self.loss_weight}, '
                f'ignore_index={self.ignore_index}, '
                f'resize_mode={self.resize_mode!r}')
