"""The base of the logit-distillation losses: argument checks, the fused/plain choice, weighted means.

A loss is a pure function of tensors: ``loss.forward_terms(student_logits, teacher_logits, gt)`` returns
its weighted terms, ``loss(...)`` their sum. It never sees a network; what it compares is recorded by
the distiller (``gdkd_seg.models.BaseDistiller``).
"""

import math
from numbers import Real
from typing import Dict, Optional, Union

import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from .functional import (
    RESIZE_MODES,
    align_logits_and_labels,
    check_labels_in_range,
    flatten_logits_and_labels,
    mean_or_zero,
)


def _check_number(name: str, value, ok, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not ok(value):
        raise ValueError(f'{name} must be {what}, got {value!r}')
    if not math.isfinite(value):
        raise ValueError(f'{name} must be finite, got {value!r}')
    return float(value)


def check_positive(name: str, value) -> float:
    return _check_number(name, value, lambda v: v > 0, '> 0')


def check_non_negative(name: str, value) -> float:
    return _check_number(name, value, lambda v: v >= 0, '>= 0')


def check_topk(topk) -> int:
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f'topk must be an integer >= 1, got {topk!r}')
    return topk


def check_topk_below_classes(method: str, topk: int, student_logits: Tensor, teacher_logits: Tensor) -> None:
    num_classes = student_logits.shape[1]
    if topk >= num_classes:
        raise ValueError(
            f'{method} needs topk < C, got topk={topk} for student logits '
            f'{tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} '
            f'(C={num_classes})'
        )


def check_resize_mode(resize_mode: str) -> str:
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f'resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}')
    return resize_mode


def build_teacher_scaling(cfg: Optional[Union[dict, nn.Module]]) -> Optional[nn.Module]:
    """A transform of the teacher's logits from its config dict (``type`` defaults to ``'TopKScaling'``);
    a module is used as it is."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    if isinstance(cfg, dict):
        return MODELS.build(dict(dict(type='TopKScaling'), **cfg))
    raise TypeError(
        "teacher_scaling must be None, a config dict such as dict(type='TopKScaling', k=5) or an "
        f'nn.Module, got {type(cfg).__name__}'
    )


class LogitDistillLoss(nn.Module):
    """Common plumbing of the logit losses.

    :meth:`forward_terms` checks and aligns its inputs once (shapes, teacher and labels resized to one
    size, ignored positions masked) and then takes one of two paths:

    * fused, when the loss was built with ``fused=True`` (GDKD, DKD) and the teacher logits need no
      gradient: :meth:`fused_terms` on the aligned ``(N, C, H, W)`` maps and their validity mask (the
      valid ``(P, C)`` rows and ``valid=None`` when a ``teacher_scaling`` is set, which works on rows);
    * plain: :meth:`plain_terms` on the valid ``(P, C)`` rows, the teacher's through ``teacher_scaling``;
      by default ``loss_weight`` times the mean over the rows of each term of :meth:`per_position`.

    Subclasses implement :meth:`per_position` (or override :meth:`plain_terms`), optionally
    :meth:`fused_terms`, and check what depends on the inputs in :meth:`check_inputs`. With
    ``needs_labels`` the labels are part of the loss (DKD's partition) and must name a class (checked here,
    or by the fused kernels in their own pass where they alone read the labels).
    """

    needs_labels = False

    def __init__(
        self,
        loss_weight: float = 1.0,
        loss_name: Optional[str] = None,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        teacher_scaling: Optional[Union[dict, nn.Module]] = None,
        fused: bool = False,
    ):
        super().__init__()
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self.ignore_index = ignore_index
        self.resize_mode = check_resize_mode(resize_mode)
        self._loss_name = loss_name or f'loss_{self.method.lower()}'
        self.teacher_scaling = build_teacher_scaling(teacher_scaling)
        self.fused = bool(fused)

    # -- what subclasses provide -----------------------------------------------------------------------

    def check_inputs(self, student_logits: Tensor, teacher_logits: Tensor, gt: Optional[Tensor]) -> None:
        """Checks that depend on the inputs (e.g. ``topk < C``); the shapes are checked by the base."""

    def per_position(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """``(P,)`` terms of the valid rows, weighted by the loss's own weights (not ``loss_weight``)."""
        raise NotImplementedError

    def fused_terms(
        self, student: Tensor, teacher: Tensor, labels: Optional[Tensor], valid: Optional[Tensor]
    ) -> Dict[str, Tensor]:
        """The terms (times ``loss_weight``) from aligned logits, by the fused kernels."""
        raise NotImplementedError

    # -- the two paths ---------------------------------------------------------------------------------

    def forward_terms(
        self, student_logits: Tensor, teacher_logits: Tensor, gt: Optional[Tensor] = None
    ) -> Dict[str, Tensor]:
        """The weighted terms: ``{name: scalar}``, summing to the loss."""
        if self.needs_labels and gt is None:
            raise ValueError(f'{self.method} needs labels: pass gt, (N, H, W) segmentation labels or (N,) class labels')
        fused = (
            self.fused
            and not teacher_logits.requires_grad
            and student_logits.dim() in (2, 4)
            and student_logits.shape[1] >= 2
            and student_logits.shape[0] > 0
        )  # an empty batch: plain
        if fused and self.teacher_scaling is None:
            student, teacher, labels, valid = align_logits_and_labels(
                student_logits, teacher_logits, gt, self.ignore_index, self.resize_mode
            )
            self.check_inputs(student_logits, teacher_logits, gt)  # labels: in the kernels' own pass
            return self.fused_terms(student, teacher, labels, valid)
        zs, zt, labels, valid = flatten_logits_and_labels(
            student_logits, teacher_logits, gt, self.ignore_index, self.resize_mode
        )
        self.check_inputs(student_logits, teacher_logits, gt)
        if self.needs_labels:  # before teacher_scaling reads them
            check_labels_in_range(labels, valid, student_logits.shape[1], self.ignore_index, self.method)
        zs, zt, labels = zs[valid], zt[valid], None if labels is None else labels[valid]
        if self.teacher_scaling is not None:
            zt = self.teacher_scaling(zt, labels)
        if fused:
            return self.fused_terms(zs, zt, labels, None)
        return self.plain_terms(zs, zt, labels)

    def plain_terms(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        return self.weighted_means(self.per_position(zs, zt, labels))

    def weighted_means(self, per_position: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """``loss_weight`` x mean over the rows of each ``(P,)`` term."""
        return {name: self.loss_weight * mean_or_zero(value, value.shape[0]) for name, value in per_position.items()}

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, gt: Optional[Tensor] = None) -> Tensor:
        return sum(self.forward_terms(student_logits, teacher_logits, gt).values())

    @property
    def method(self) -> str:
        """The method's name for messages: ``'DKD'`` for ``DKDLoss``."""
        return type(self).__name__.replace('Loss', '')

    @property
    def loss_name(self) -> str:
        """The key under which the distiller logs this loss (``distill.<name>.<loss_name>``); it contains
        "loss", so MMEngine adds it to the total (``loss_<method>`` by default, e.g. ``loss_gdkd``)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}, ignore_index={self.ignore_index}, resize_mode={self.resize_mode!r}'
