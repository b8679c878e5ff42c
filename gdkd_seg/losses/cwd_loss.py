"""CWD: channel-wise distillation (Shu et al., ICCV 2021)."""

from typing import Dict, Optional

from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_positive
from .functional import align_logits_and_labels, grouped_kl


def cwd_per_channel(student_maps: Tensor, teacher_maps: Tensor, valid: Tensor, tau: float) -> Tensor:
    """``(N, C)`` of ``tau^2 KL(teacher || student)`` of the spatial softmax.

    The softmax of each image and channel runs over that image's valid
    positions only; an image without valid positions gives 0.
    """
    n, c, h, w = student_maps.shape
    # group 0 = valid positions, 1 = ignored: the within-group KL of group 0
    # is the KL of the spatial softmaxes restricted to the valid positions
    group_ids = (~valid).long().reshape(n, 1, h * w).expand(n, c, h * w)
    _, within_kl = grouped_kl(
        student_maps.reshape(n * c, h * w), teacher_maps.reshape(n * c, h * w), group_ids.reshape(n * c, h * w), 2, tau
    )
    return tau**2 * within_kl[:, 0].reshape(n, c)


@MODELS.register_module()
class CWDLoss(LogitDistillLoss):
    r"""Channel-wise distillation on ``(N, C, H, W)`` maps.

    Per image n and channel c, :math:`\phi(z)_{n,c} = \mathrm{softmax}` of
    :math:`z_{n,c,:}/\tau` over the H*W (valid) positions:

    .. math::
        L = \frac{\tau^2}{N C} \sum_{n,c} KL(\phi(z_t)_{n,c}\|\phi(z_s)_{n,c})

    multiplied by ``loss_weight``; N counts the images with at least one
    valid position. Ignored positions are left out of the spatial softmax.

    Args:
        tau (float): softmax temperature.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of positions to leave out.
        resize_mode (str): ``'logits'`` or ``'label'`` (see GDKDLoss).
        loss_name (str): name of the loss item.
    """

    def __init__(
        self,
        tau: float = 1.0,
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_cwd',
    ):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode)
        self.tau = check_positive('tau', tau)

    def forward_terms(
        self, student_logits: Tensor, teacher_logits: Tensor, gt: Optional[Tensor] = None
    ) -> Dict[str, Tensor]:
        """Returns ``{'cwd'}``, a weighted scalar."""
        if student_logits.dim() == 2:
            raise ValueError(f'CWD needs (N, C, H, W) maps, got student logits of shape {tuple(student_logits.shape)}')
        student, teacher, _, valid = align_logits_and_labels(
            student_logits, teacher_logits, gt, self.ignore_index, self.resize_mode
        )
        per_channel = cwd_per_channel(student, teacher, valid, self.tau)
        num_images = int(valid.flatten(1).any(dim=1).sum())
        cwd = per_channel.sum() / max(num_images * per_channel.shape[1], 1)
        return dict(cwd=self.loss_weight * cwd)

    def extra_repr(self) -> str:
        return f'tau={self.tau}, ' + super().extra_repr()
