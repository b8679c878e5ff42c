"""Block-wise logit distillation with stepping stones (Yu et al., arXiv 2411.01547)."""

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_non_negative, check_positive
from .functional import flatten_logits_and_labels, mean_or_zero, squeeze_label_channel
from .kd_loss import kd_per_position


def stone_cross_entropy(logits: Tensor, gt: Tensor, ignore_index: Optional[int]) -> Tensor:
    """Pixel cross-entropy of ``(N, C, h, w)`` logits upsampled to the ``(N, H, W)`` labels (as MMSeg's
    decode heads compute it); ignored pixels are left out, and none valid gives a 0 in the graph."""
    logits = F.interpolate(logits.float(), size=gt.shape[-2:], mode='bilinear', align_corners=False)
    per_pixel = F.cross_entropy(
        logits, gt.long(), reduction='none', ignore_index=-100 if ignore_index is None else ignore_index
    )
    valid = gt != ignore_index if ignore_index is not None else torch.ones_like(gt, dtype=torch.bool)
    return mean_or_zero(per_pixel[valid], int(valid.sum()))


@MODELS.register_module()
class BlockwiseKDLoss(LogitDistillLoss):
    r"""Block-wise logit distillation: KD for the student and for stepping-stone networks.

    Stepping stone :math:`N_i` runs the student's stages 1..i, a connector and the teacher's remaining stages
    and head (:class:`~gdkd_seg.models.SteppingStones`, a distiller component); its logits arrive as
    ``stones``, pairs ``(w_i, z_i)`` with :math:`w_i = 2^{-(n-i)}`. With :math:`z_s, z_t` the student's and
    teacher's logits, :math:`\bar z` the mean of the stones' logits (a fixed target) and
    :math:`KD(a, b) = T^2 KL(\mathrm{softmax}(b/T) \| \mathrm{softmax}(a/T))` averaged over valid pixels:

    .. math::
        L = \alpha \sum_i w_i CE(z_i, y)
          + \beta [KD(z_s, z_t) + \sum_i w_i KD(z_i, z_t)]
          + \gamma [KD(z_s, \bar z) + \sum_i w_i KD(z_i, \bar z)]

    multiplied by ``loss_weight``. The student's own cross-entropy stays the student's decode-head loss.
    Gradients reach the connectors and the student's stages through the frozen teacher's layers.

    Declared on the decode-head logits, with the stones' logits as an extra input::

        components=dict(stepping_stones=dict(type='SteppingStones', stones=[1, 2, 3])),
        distill_losses=dict(blockwise=dict(
            student='decode_head.conv_seg', teacher='decode_head.conv_seg',
            extra_inputs=dict(stones='stepping_stones'), loss=dict(type='BlockwiseKDLoss')))

    Args:
        alpha, beta, gamma (float): weights of the stones' task, the distillation and the cross terms.
        temperature (float): T of the KD and cross terms.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of pixels to leave out.
        resize_mode (str): ``'logits'`` or ``'label'`` for the KD terms (see GDKDLoss).
        loss_name (str): name of the loss item.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 1.0,
        temperature: float = 1.0,
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_blockwise',
    ):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode)
        self.alpha = check_non_negative('alpha', alpha)
        self.beta = check_non_negative('beta', beta)
        self.gamma = check_non_negative('gamma', gamma)
        self.temperature = check_positive('temperature', temperature)

    def _kd(self, student_logits: Tensor, target_logits: Tensor, gt: Tensor) -> Tensor:
        zs, zt, _, valid = flatten_logits_and_labels(
            student_logits, target_logits, gt, self.ignore_index, self.resize_mode
        )
        kd = kd_per_position(zs[valid], zt[valid], self.temperature)['kd']
        return mean_or_zero(kd, kd.shape[0])

    def forward_terms(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        gt: Optional[Tensor] = None,
        stones: Sequence[Tuple[float, Tensor]] = (),
    ) -> Dict[str, Tensor]:
        """Returns ``{'task', 'kd', 'cross'}``, weighted scalars."""
        if gt is None:
            raise ValueError("BlockwiseKDLoss needs the labels (gt) for the stepping stones' task loss")
        if not stones:
            raise ValueError(
                "BlockwiseKDLoss needs the stepping stones' logits: declare "
                "components=dict(stepping_stones=dict(type='SteppingStones', ...)) and "
                "extra_inputs=dict(stones='stepping_stones') in its distill_losses entry"
            )
        gt = squeeze_label_channel(gt)
        for i, (_, logits) in enumerate(stones):
            if logits.shape[:2] != teacher_logits.shape[:2]:
                raise ValueError(
                    f'stepping stone {i} gives logits {tuple(logits.shape)}, the teacher '
                    f'{tuple(teacher_logits.shape)}: do the stones run this teacher?'
                )
        target = torch.stack([z.float() for _, z in stones]).mean(0).detach()
        task = sum(w * stone_cross_entropy(z, gt, self.ignore_index) for w, z in stones)
        kd = self._kd(student_logits, teacher_logits, gt) + sum(w * self._kd(z, teacher_logits, gt) for w, z in stones)
        cross = self._kd(student_logits, target, gt) + sum(w * self._kd(z, target, gt) for w, z in stones)
        scale = self.loss_weight
        return dict(task=scale * self.alpha * task, kd=scale * self.beta * kd, cross=scale * self.gamma * cross)

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor,
        gt: Optional[Tensor] = None,
        stones: Sequence[Tuple[float, Tensor]] = (),
    ) -> Tensor:
        return sum(self.forward_terms(student_logits, teacher_logits, gt, stones).values())

    def extra_repr(self) -> str:
        return (
            f'alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, '
            f'temperature={self.temperature}, ' + super().extra_repr()
        )
