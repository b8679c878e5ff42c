"""GDKD3: GDKD with three groups (top-1, top-2..k, rest)."""

from typing import Dict, Optional

import torch
from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_non_negative, check_positive, check_topk, check_topk_below_classes
from .functional import grouped_kl, topk_partition_mask


def gdkd3_group_ids(teacher_logits: Tensor, topk: int) -> Tensor:
    """``(P, C)`` group ids: 0 = teacher top-1, 1 = top-2..k, 2 = the rest."""
    in_topk = topk_partition_mask(teacher_logits, topk, dim=1)
    is_top1 = topk_partition_mask(teacher_logits, 1, dim=1)
    # top-1 wins over top-k so that the groups always partition the classes
    # (the two topk calls could only disagree with > k tied maxima)
    group_ids = torch.where(in_topk, 1, 2)
    return torch.where(is_top1, 0, group_ids)


def gdkd3_per_position(
    zs: Tensor, zt: Tensor, group_ids: Tensor, w0: float, w1: float, w2: float, temperature: float
) -> Dict[str, Tensor]:
    """Weighted GDKD3 terms per row of ``(P, C)`` logits.

    ``group_ids`` is 0 / 1 / 2 for top-1 / top-2..k / rest. Returns ``(P,)``
    tensors ``high = T^2 w0 KL3(b_t||b_s)``, ``top = T^2 w1 KL inside
    top-2..k`` and ``other = T^2 w2 KL inside the rest`` (the KL inside the
    single-class top-1 group is identically 0).
    """
    mass_kl, within_kl = grouped_kl(zs, zt, group_ids, 3, temperature)
    t2 = temperature**2
    return dict(high=t2 * w0 * mass_kl, top=t2 * w1 * within_kl[:, 1], other=t2 * w2 * within_kl[:, 2])


@MODELS.register_module()
class GDKD3Loss(LogitDistillLoss):
    r"""Three-group GDKD, per pixel or per sample.

    Groups: the teacher's top-1 class, its top-2..k classes (M) and the rest
    (R); :math:`b` = the three group masses of
    :math:`p = \mathrm{softmax}(z/T)`, :math:`q^G` = softmax restricted to G:

    .. math::
        L = T^2 [w_0 KL(b_t\|b_s) + w_1 KL(q_t^M\|q_s^M)
                 + w_2 KL(q_t^R\|q_s^R)]

    averaged over the valid positions and multiplied by ``loss_weight``.
    With ``topk=1`` the middle group is empty and contributes 0.

    Args:
        topk (int): the top group is the teacher's top-1..k (``topk < C``).
        w0, w1, w2 (float): weights of the mass, middle and rest terms.
        temperature (float): softmax temperature T.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of positions to leave out.
        resize_mode (str): ``'logits'`` or ``'label'`` (see GDKDLoss).
        loss_name (str): name of the loss item.
    """

    def __init__(
        self,
        topk: int = 4,
        w0: float = 1.0,
        w1: float = 1.0,
        w2: float = 2.0,
        temperature: float = 1.0,
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_gdkd3',
    ):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode)
        self.topk = check_topk(topk)
        self.w0 = check_non_negative('w0', w0)
        self.w1 = check_non_negative('w1', w1)
        self.w2 = check_non_negative('w2', w2)
        self.temperature = check_positive('temperature', temperature)

    def check_inputs(self, student_logits: Tensor, teacher_logits: Tensor, gt: Optional[Tensor]) -> None:
        check_topk_below_classes('GDKD3', self.topk, student_logits, teacher_logits)

    def per_position(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """``{'high', 'top', 'other'}`` per valid row."""
        return gdkd3_per_position(zs, zt, gdkd3_group_ids(zt, self.topk), self.w0, self.w1, self.w2, self.temperature)

    def extra_repr(self) -> str:
        return (
            f'topk={self.topk}, w0={self.w0}, w1={self.w1}, w2={self.w2}, '
            f'temperature={self.temperature}, ' + super().extra_repr()
        )
