"""GDKD3: GDKD with three groups (top-1, top-2..k, rest)."""

import torch
from mmseg.registry import MODELS
from torch import Tensor

from .functional import topk_partition_mask
from .gdkd_loss import GDKDLoss


def gdkd3_group_ids(teacher_logits: Tensor, topk: int) -> Tensor:
    """``(P, C)`` group ids: 0 = teacher top-1, 1 = top-2..k, 2 = the rest."""
    in_topk = topk_partition_mask(teacher_logits, topk, dim=1)
    is_top1 = topk_partition_mask(teacher_logits, 1, dim=1)
    # top-1 wins over top-k so that the groups always partition the classes
    # (the two topk calls could only disagree with > k tied maxima)
    group_ids = torch.where(in_topk, 1, 2)
    return torch.where(is_top1, 0, group_ids)


@MODELS.register_module()
class GDKD3Loss(GDKDLoss):
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

    The other arguments are GDKDLoss's; there is no fused kernel for three groups.
    """

    num_groups = 3
    term_groups = (1, 2)  # top-2..k and the rest; the KL inside the single-class top-1 group is 0

    def __init__(self, topk: int = 4, loss_name: str = 'loss_gdkd3', **kwargs):
        super().__init__(topk=topk, loss_name=loss_name, fused=False, **kwargs)

    def group_ids(self, zt: Tensor) -> Tensor:
        return gdkd3_group_ids(zt, self.topk)
