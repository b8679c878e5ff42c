"""GDKD: generalized decoupled knowledge distillation, pixel-wise."""

from typing import Dict, Optional, Tuple

from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_non_negative, check_positive, check_topk, check_topk_below_classes
from .functional import grouped_kl, topk_partition_mask
from .fused import fused_gdkd_terms


def gdkd_group_ids(teacher_logits: Tensor, topk: int) -> Tensor:
    """``(P, C)`` group ids: 0 for the teacher's top-k classes, 1 else."""
    return (~topk_partition_mask(teacher_logits, topk, dim=1)).long()


def grouped_kd_per_position(
    zs: Tensor,
    zt: Tensor,
    group_ids: Tensor,
    weights: Tuple[float, float, float],
    temperature: float,
    num_groups: int = 2,
    term_groups: Tuple[int, int] = (0, 1),
) -> Dict[str, Tensor]:
    """Weighted terms per row of ``(P, C)`` logits for a partition of the classes into ``num_groups`` groups.

    Returns ``(P,)`` tensors ``high = T^2 w0 KL(b_t||b_s)`` (the group masses) and, for the groups
    ``term_groups = (a, b)``, ``top = T^2 w1 KL(q_t^a||q_s^a)`` and ``other = T^2 w2 KL(q_t^b||q_s^b)``.
    """
    mass_kl, within_kl = grouped_kl(zs, zt, group_ids, num_groups, temperature)
    t2 = temperature**2
    w0, w1, w2 = weights
    top, other = term_groups
    return dict(high=t2 * w0 * mass_kl, top=t2 * w1 * within_kl[:, top], other=t2 * w2 * within_kl[:, other])


def gdkd_per_position(zs: Tensor, zt: Tensor, topk: int, weights, temperature: float) -> Dict[str, Tensor]:
    """GDKD's ``{'high', 'top', 'other'}`` per row: the teacher's top-k against the rest."""
    return grouped_kd_per_position(zs, zt, gdkd_group_ids(zt, topk), weights, temperature)


@MODELS.register_module()
class GDKDLoss(LogitDistillLoss):
    r"""GDKD loss (Zheng & Cheng, TNNLS 2026), per pixel or per sample.

    Group A = the teacher's ``topk`` largest logits, B = the rest;
    :math:`b` = group masses of :math:`p = \mathrm{softmax}(z/T)` and
    :math:`q^G` = softmax of :math:`z/T` restricted to G:

    .. math::
        L = T^2 [w_0 KL(b_t\|b_s) + w_1 KL(q_t^A\|q_s^A)
                 + w_2 KL(q_t^B\|q_s^B)]

    averaged over the valid positions and multiplied by ``loss_weight``.
    The leaf terms are not weighted by the teacher's group mass, so
    ``w0=w1=w2=1`` is not plain KD. The labels only select valid positions.

    Args:
        topk (int): size of the teacher's top group (needs ``topk < C``).
        w0, w1, w2 (float): weights of the high-level, top-group and
            other-group terms.
        temperature (float): softmax temperature T.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of positions to leave out.
        resize_mode (str): ``'logits'`` (labels resized by nearest to the
            logits) or ``'label'`` (logits upsampled bilinearly to labels).
        loss_name (str): name of the loss item.
        teacher_scaling (dict | None): optional transform of the teacher's
            logits before the loss, e.g. ``dict(type='TopKScaling', k=5)``
            (TopKD's TSM); it sees the valid rows and their labels.
        fused (bool): compute the loss and its gradient w.r.t. the student
            in a few fused passes (:mod:`gdkd_seg.losses.fused`, the
            default); False: the plain autograd implementation below (also
            used when the teacher logits require grad).
    """

    num_groups = 2
    term_groups = (0, 1)  # the groups whose within-group KLs are the 'top' and 'other' terms

    def __init__(
        self,
        topk: int = 3,
        w0: float = 1.0,
        w1: float = 1.0,
        w2: float = 2.0,
        temperature: float = 1.0,
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_gdkd',
        teacher_scaling: Optional[dict] = None,
        fused: bool = True,
    ):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode, teacher_scaling, fused)
        self.topk = check_topk(topk)
        self.w0 = check_non_negative('w0', w0)
        self.w1 = check_non_negative('w1', w1)
        self.w2 = check_non_negative('w2', w2)
        self.temperature = check_positive('temperature', temperature)

    def group_ids(self, zt: Tensor) -> Tensor:
        """``(P, C)`` group ids of the rows' classes."""
        return gdkd_group_ids(zt, self.topk)

    def check_inputs(self, student_logits: Tensor, teacher_logits: Tensor, gt: Optional[Tensor]) -> None:
        check_topk_below_classes(self.method, self.topk, student_logits, teacher_logits)

    def per_position(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """``{'high', 'top', 'other'}`` per valid row."""
        weights = (self.w0, self.w1, self.w2)
        return grouped_kd_per_position(
            zs, zt, self.group_ids(zt), weights, self.temperature, self.num_groups, self.term_groups
        )

    def fused_terms(
        self, student: Tensor, teacher: Tensor, labels: Optional[Tensor], valid: Optional[Tensor]
    ) -> Dict[str, Tensor]:
        return fused_gdkd_terms(
            student, teacher, valid, self.topk, (self.w0, self.w1, self.w2), self.temperature, self.loss_weight
        )

    def extra_repr(self) -> str:
        return (
            f'topk={self.topk}, w0={self.w0}, w1={self.w1}, w2={self.w2}, '
            f'temperature={self.temperature}, fused={self.fused}, ' + super().extra_repr()
        )
