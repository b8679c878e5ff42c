"""KD: Hinton et al. knowledge distillation, per pixel or per sample."""
from typing import Dict, Optional

from torch import Tensor

from mmseg.registry import MODELS
from .utils import LogitDistillLoss, check_positive, kl_per_row


def kd_per_position(zs: Tensor, zt: Tensor,
                    temperature: float) -> Dict[str, Tensor]:
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

    def __init__(self, temperature: float = 1.0, loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 resize_mode: str = 'logits', loss_name: str = 'loss_kd',
                 teacher_scaling: Optional[dict] = None):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode,
                         teacher_scaling)
        self.temperature = check_positive('temperature', temperature)

    def forward_terms(self, student_logits: Tensor, teacher_logits: Tensor,
                      gt: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Returns ``{'kd'}``, a weighted scalar."""
        zs, zt, _ = self.flatten(student_logits, teacher_logits, gt)
        per_position = kd_per_position(zs, zt, self.temperature)
        return self.weighted_means(per_position)

    def extra_repr(self) -> str:
        return f'temperature={self.temperature}, ' + super().extra_repr()
