"""Feature KD: MSE between projected student features and teacher features, for feature-only KD
(Cooper et al., arXiv 2511.14981)."""

from typing import Dict, Optional, Tuple

import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

from .base import check_non_negative


def pool_to_common_size(student: Tensor, teacher: Tensor) -> Tuple[Tensor, Tensor]:
    """Average-pool the larger of two ``(N, C, H, W)`` maps to the size of the smaller one."""
    (hs, ws), (ht, wt) = student.shape[-2:], teacher.shape[-2:]
    if hs <= ht and ws <= wt:
        return student, F.adaptive_avg_pool2d(teacher, (hs, ws))
    if hs >= ht and ws >= wt:
        return F.adaptive_avg_pool2d(student, (ht, wt)), teacher
    raise ValueError(
        f'student features {tuple(student.shape)} and teacher features {tuple(teacher.shape)}: '
        'neither map is at least as large as the other in both height and width'
    )


@MODELS.register_module()
class FeatureKDLoss(nn.Module):
    r"""Mean squared error between student and teacher feature maps.

    .. math::
        L = \frac{1}{NCHW} \| P(f_s) - P(f_t) \|^2

    where :math:`P` average-pools the larger map to the smaller one's size (the other map is unchanged),
    multiplied by ``loss_weight``. The student features come through the distiller's ``connector``, a
    trainable 1x1 projector to the teacher's channels: ``connector=dict(type='FeatureProjector',
    in_channels=Cs, out_channels=Ct)`` (a 1x1 conv without bias commutes with average pooling, so
    projecting before pooling is the same as after).

    Feature-only KD (the backbone learns from the feature losses alone) is the distiller's
    ``detach_head_input=True``: the student's heads then train on detached backbone features.

    Args:
        loss_weight (float): multiplier of the loss.
        loss_name (str): name of the loss item.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_feat', **kwargs):
        super().__init__()
        if 'detach_head_input' in kwargs:
            raise ValueError(
                'FeatureKDLoss no longer takes detach_head_input: the distiller detaches the '
                "student's head input, set model.detach_head_input=True (feature-only KD)"
            )
        if kwargs:
            raise TypeError(f'FeatureKDLoss got unexpected arguments {sorted(kwargs)}')
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self._loss_name = loss_name

    def forward_terms(
        self, student_feats: Tensor, teacher_feats: Tensor, gt: Optional[Tensor] = None
    ) -> Dict[str, Tensor]:
        """Returns ``{'mse'}``, a weighted scalar (``gt`` is not used)."""
        if student_feats.dim() != 4 or teacher_feats.dim() != 4:
            raise ValueError(
                f'FeatureKDLoss compares (N, C, H, W) maps, got student {tuple(student_feats.shape)} '
                f'and teacher {tuple(teacher_feats.shape)}'
            )
        if student_feats.shape[:2] != teacher_feats.shape[:2]:
            raise ValueError(
                f'student features {tuple(student_feats.shape)} and teacher features '
                f'{tuple(teacher_feats.shape)} differ in batch or channels: project the student with '
                f"connector=dict(type='FeatureProjector', in_channels={student_feats.shape[1]}, "
                f'out_channels={teacher_feats.shape[1]})'
            )
        student, teacher = pool_to_common_size(student_feats, teacher_feats.to(student_feats.dtype))
        return dict(mse=self.loss_weight * F.mse_loss(student, teacher.detach()))

    def forward(self, student_feats: Tensor, teacher_feats: Tensor, gt: Optional[Tensor] = None) -> Tensor:
        return sum(self.forward_terms(student_feats, teacher_feats, gt).values())

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}'
