"""KD: Hinton et al. knowledge distillation, per pixel or per sample."""

from typing import Dict, Optional

from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_positive
from .functional import kl_per_row


def kd_per_position(zs: Tensor, zt: Tensor, temperature: float) -> Dict[str, Tensor]:
    """``kd = T^2 KL(softmax(z_t/T) || softmax(z_s/T))`` per row."""
    return dict(kd=temperature**2 * kl_per_row(zs, zt, temperature))


@MODELS.register_module()
class KDLoss(LogitDistillLoss):
    r"""KD loss, per pixel or per sample.

    .. math::
        L = T^2 KL(p_t\|p_s), \quad p = \mathrm{softmax}(z/T)

    averaged over the valid positions and multiplied by ``loss_weight``.

    Args:
        temperature (float): softmax temperature T.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of positions to leave out.
        resize_mode (str): ``'logits'`` or ``'label'`` (see GDKDLoss).
        loss_name (str): name of the loss item.
        teacher_scaling (dict | None): optional transform of the teacher's
            logits before the loss, e.g. ``dict(type='TopKScaling', k=5)``
            (TopKD's TSM); it sees the valid rows and their labels.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_kd',
        teacher_scaling: Optional[dict] = None,
    ):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode, teacher_scaling)
        self.temperature = check_positive('temperature', temperature)

    def per_position(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """``{'kd'}`` per valid row."""
        return kd_per_position(zs, zt, self.temperature)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}, ' + super().extra_repr()
