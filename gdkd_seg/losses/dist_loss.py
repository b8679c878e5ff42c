"""DIST: knowledge distillation from a stronger teacher (Huang et al.,
NeurIPS 2022), with the valid pixels of the batch as the samples."""

from typing import Dict, Optional

from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_non_negative, check_positive


def pearson_correlation(a: Tensor, b: Tensor, dim: int, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim``.

    The norm product is clamped at ``eps`` rather than offset by it (as the
    DIST code does) so that equal inputs correlate exactly 1; a constant
    input correlates 0.
    """
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    norms = a.norm(dim=dim) * b.norm(dim=dim)
    return (a * b).sum(dim) / norms.clamp_min(eps)


def dist_terms(zs: Tensor, zt: Tensor, tau: float) -> Dict[str, Tensor]:
    """Unweighted ``tau^2 * inter`` and ``tau^2 * intra`` of ``(P, C)`` rows.

    inter = 1 - mean over rows of the correlation across classes,
    intra = 1 - mean over classes of the correlation across rows. Both are 0
    (still in the graph) without rows; intra is 0 with a single row, where a
    correlation across rows is undefined.
    """
    num_rows = zs.shape[0]
    zero = (zs.sum() + zt.sum()) * 0
    if num_rows == 0:
        return dict(inter=zero, intra=zero)
    ys = (zs / tau).softmax(dim=1)
    yt = (zt / tau).softmax(dim=1)
    inter = 1 - pearson_correlation(ys, yt, dim=1).mean()
    intra = 1 - pearson_correlation(ys, yt, dim=0).mean() if num_rows > 1 else zero
    return dict(inter=tau**2 * inter, intra=tau**2 * intra)


@MODELS.register_module()
class DISTLoss(LogitDistillLoss):
    r"""DIST loss over the valid positions of the batch.

    With :math:`y = \mathrm{softmax}(z/\tau)` per position, stacked into a
    ``(P, C)`` matrix and :math:`\rho` the Pearson correlation:

    .. math::
        L = \tau^2 [\beta (1 - \mathrm{mean}_p \rho(y_{s,p}, y_{t,p}))
                    + \gamma (1 - \mathrm{mean}_c \rho(y_{s,:c}, y_{t,:c}))]

    multiplied by ``loss_weight``. Not a mean of per-position losses: intra
    correlates each class across all valid positions of the batch.

    Args:
        beta (float): weight of the inter-class (per position) term.
        gamma (float): weight of the intra-class (per class) term.
        tau (float): softmax temperature.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of positions to leave out.
        resize_mode (str): ``'logits'`` or ``'label'`` (see GDKDLoss).
        loss_name (str): name of the loss item.
    """

    def __init__(
        self,
        beta: float = 1.0,
        gamma: float = 1.0,
        tau: float = 1.0,
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_dist',
    ):
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode)
        self.beta = check_non_negative('beta', beta)
        self.gamma = check_non_negative('gamma', gamma)
        self.tau = check_positive('tau', tau)

    def plain_terms(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """``{'inter', 'intra'}``, each a weighted scalar (not a mean of per-row terms)."""
        terms = dist_terms(zs, zt, self.tau)
        return dict(
            inter=self.loss_weight * self.beta * terms['inter'], intra=self.loss_weight * self.gamma * terms['intra']
        )

    def extra_repr(self) -> str:
        return f'beta={self.beta}, gamma={self.gamma}, tau={self.tau}, ' + super().extra_repr()
