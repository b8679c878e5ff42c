"""DKD: decoupled knowledge distillation (Zhao et al., CVPR 2022)."""

from typing import Dict, Optional

from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_non_negative, check_positive
from .functional import grouped_kl
from .fused import fused_dkd_terms


def dkd_group_ids(labels: Tensor, num_classes: int) -> Tensor:
    """``(P, C)`` group ids: 0 for the target class, 1 for the others."""
    ids = labels.new_ones(labels.shape[0], num_classes)
    return ids.scatter(1, labels[:, None], 0)


def dkd_per_position(
    zs: Tensor, zt: Tensor, labels: Tensor, alpha: float, beta: float, temperature: float
) -> Dict[str, Tensor]:
    """Weighted DKD terms per row: ``tckd = T^2 alpha KL(b_t||b_s)`` of the
    (target, non-target) masses, ``nckd = T^2 beta KL`` among non-targets."""
    mass_kl, within_kl = grouped_kl(zs, zt, dkd_group_ids(labels, zs.shape[1]), 2, temperature)
    t2 = temperature**2
    return dict(tckd=t2 * alpha * mass_kl, nckd=t2 * beta * within_kl[:, 1])


@MODELS.register_module()
class DKDLoss(LogitDistillLoss):
    r"""DKD loss, per pixel or per sample; needs labels.

    With :math:`b = (p_{gt}, 1 - p_{gt})` for :math:`p = \mathrm{softmax}(z/T)`
    and :math:`\hat q` the softmax over the non-target classes:

    .. math::
        L = T^2 [\alpha KL(b_t\|b_s) + \beta KL(\hat q_t\|\hat q_s)]

    averaged over the valid positions and multiplied by ``loss_weight``.

    Args:
        alpha (float): weight of TCKD.
        beta (float): weight of NCKD.
        temperature (float): softmax temperature T.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of positions to leave out.
        resize_mode (str): ``'logits'`` or ``'label'`` (see GDKDLoss).
        loss_name (str): name of the loss item.
        teacher_scaling (dict | None): optional transform of the teacher's
            logits before the loss, e.g. ``dict(type='TopKScaling', k=5)``
            (TopKD's TSM); it sees the valid rows and their labels.
        fused (bool): fused loss and gradient (default; see GDKDLoss).
    """

    needs_labels = True

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 2.0,
        temperature: float = 1.0,
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_dkd',
        teacher_scaling: Optional[dict] = None,
        fused: bool = True,
    ):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode, teacher_scaling, fused)
        self.alpha = check_non_negative('alpha', alpha)
        self.beta = check_non_negative('beta', beta)
        self.temperature = check_positive('temperature', temperature)

    def per_position(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """``{'tckd', 'nckd'}`` per valid row."""
        return dkd_per_position(zs, zt, labels, self.alpha, self.beta, self.temperature)

    def fused_terms(
        self, student: Tensor, teacher: Tensor, labels: Optional[Tensor], valid: Optional[Tensor]
    ) -> Dict[str, Tensor]:
        return fused_dkd_terms(
            student,
            teacher,
            labels,
            valid,
            self.alpha,
            self.beta,
            self.temperature,
            self.loss_weight,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return (
            f'alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, '
            f'fused={self.fused}, ' + super().extra_repr()
        )
