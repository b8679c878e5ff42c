"""TopKD: top-scaled knowledge distillation (Wang & Zhou, arXiv 2508.04539),
per pixel or per sample."""

from typing import Dict, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .base import LogitDistillLoss, check_non_negative, check_positive, check_topk
from .functional import topk_partition_mask


def tdl_group_masks(teacher_logits: Tensor, topk: int):
    """``(P, C)`` bool masks of Pos (the teacher's k largest logits), Neg (its
    k smallest, never overlapping Pos) and Non (the rest)."""
    pos = topk_partition_mask(teacher_logits, topk, dim=1)
    below_pos = teacher_logits.detach().masked_fill(pos, float('inf'))
    neg = topk_partition_mask(-below_pos, topk, dim=1)
    return pos, neg, ~(pos | neg)


def masked_cosine(a: Tensor, b: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarity of the entries of ``a`` and ``b`` under ``mask``,
    per row (0 for an empty or all-zero selection)."""
    a, b = a * mask, b * mask
    norms = (a.square().sum(1) * b.square().sum(1)).clamp_min(eps**2).sqrt()
    return (a * b).sum(1) / norms


def tdl_per_position(zs: Tensor, zt: Tensor, topk: int, alpha: float, beta: float) -> Dict[str, Tensor]:
    """Weighted TDL terms per row of ``(P, C)`` logits: ``pos = alpha (1 -
    cos)``, ``neg = beta (1 - cos)``, ``non = 1 - cos`` on the Pos / Neg / Non
    classes of ``zt`` (``non`` is 0 where Non is empty, i.e. ``2 k = C``)."""
    pos, neg, non = tdl_group_masks(zt, topk)
    has_non = non.any(1).to(zs.dtype)
    return dict(
        pos=alpha * (1 - masked_cosine(zs, zt, pos)),
        neg=beta * (1 - masked_cosine(zs, zt, neg)),
        non=has_non * (1 - masked_cosine(zs, zt, non)),
    )


def batch_contrastive(zs: Tensor, zt: Tensor, tau: float) -> Tensor:
    """Symmetric CLIP-style cross entropy between the L2-normalised student
    and teacher rows: row p of one must pick row p of the other among all
    rows, at temperature ``tau``. 0 (in the graph) for fewer than 2 rows."""
    if zs.shape[0] < 2:
        return (zs.sum() + zt.sum()) * 0
    sim = F.normalize(zs, dim=1) @ F.normalize(zt, dim=1).t() / tau
    target = torch.arange(sim.shape[0], device=sim.device)
    return (F.cross_entropy(sim, target) + F.cross_entropy(sim.t(), target)) / 2


def sample_rows(num_rows: int, num_samples: Optional[int], device: torch.device) -> Optional[Tensor]:
    """Indices of a random subset of ``num_samples`` rows without
    replacement (torch's global RNG), or None to keep all rows."""
    if num_samples is None or num_rows <= num_samples:
        return None
    return torch.randperm(num_rows, device=device)[:num_samples]


@MODELS.register_module()
class TopKDLoss(LogitDistillLoss):
    r"""TopKD loss: Top-K Decoupled Loss plus a batch contrastive term on
    TSM-scaled teacher logits, per pixel or per sample.

    The teacher's logits first go through ``teacher_scaling`` (TopKD's
    :class:`TopKScaling`, with ``k=topk`` unless set). Its classes then
    split into Pos (the ``topk`` largest scaled logits), Neg (the ``topk``
    smallest) and Non (the rest); with :math:`\cos_G` the cosine similarity
    of the student and scaled-teacher logits restricted to G:

    .. math::
        L_{TDL} = \mathrm{mean}_p [\alpha (1 - \cos_{Pos})
                  + \beta (1 - \cos_{Neg}) + (1 - \cos_{Non})]

    which is the paper's :math:`1 - \mathrm{mean}_p[\alpha\cos_{Pos} +
    \beta\cos_{Neg} + \cos_{Non}]` plus the constant :math:`\alpha + \beta`
    (same gradients, and 0 at a perfect match). The contrastive term is the
    symmetric cross entropy of the ``B x B`` cosine-similarity matrix of the
    student and teacher rows over ``tau`` (CLIP), on at most
    ``contrast_pixels`` valid positions drawn at random:

    .. math::
        L = \text{loss\_weight} \cdot (L_{TDL}
            + \text{contrast\_weight} \cdot L_{con})

    Needs ``2 * topk <= C``. ``topk=5`` is the paper's classification
    default; ``alpha=beta=1``, ``contrast_weight=0.1``, ``tau=0.1`` and 1024
    pixels are unpublished choices of ours (docs/methods.md: how they fare on
    the embedded demo).

    Args:
        topk (int): size of Pos and of Neg.
        alpha (float): weight of the Pos term.
        beta (float): weight of the Neg term.
        contrast_weight (float): weight of the contrastive term (0: off).
        tau (float): temperature of the contrastive term.
        contrast_pixels (int | None): most positions in the contrastive
            term's batch (its matrix is ``B x B``); None: all valid ones.
        teacher_scaling (dict | nn.Module | None): TSM config (``type``
            defaults to ``'TopKScaling'``, ``k`` to ``topk``); None: raw
            teacher logits.
        loss_weight (float): multiplier of the whole loss.
        ignore_index (int | None): label value of positions to leave out.
        resize_mode (str): ``'logits'`` or ``'label'`` (see GDKDLoss).
        loss_name (str): name of the loss item.
    """

    def __init__(
        self,
        topk: int = 5,
        alpha: float = 1.0,
        beta: float = 1.0,
        contrast_weight: float = 0.1,
        tau: float = 0.1,
        contrast_pixels: Optional[int] = 1024,
        teacher_scaling: Optional[Union[dict, nn.Module]] = dict(type='TopKScaling'),
        loss_weight: float = 1.0,
        ignore_index: Optional[int] = 255,
        resize_mode: str = 'logits',
        loss_name: str = 'loss_topkd',
    ):
        topk = check_topk(topk)
        if isinstance(teacher_scaling, dict):
            teacher_scaling = dict(dict(k=topk), **teacher_scaling)
        super().__init__(loss_weight, loss_name, ignore_index, resize_mode, teacher_scaling)
        self.topk = topk
        self.alpha = check_non_negative('alpha', alpha)
        self.beta = check_non_negative('beta', beta)
        self.contrast_weight = check_non_negative('contrast_weight', contrast_weight)
        self.tau = check_positive('tau', tau)
        if contrast_pixels is not None and (
            isinstance(contrast_pixels, bool) or not isinstance(contrast_pixels, int) or contrast_pixels < 2
        ):
            raise ValueError(
                'contrast_pixels must be an integer >= 2 (the '
                'contrastive batch size) or None for all '
                f'valid positions, got {contrast_pixels!r}'
            )
        self.contrast_pixels = contrast_pixels

    def check_inputs(self, student_logits: Tensor, teacher_logits: Tensor, gt: Optional[Tensor]) -> None:
        num_classes = student_logits.shape[1]
        if 2 * self.topk > num_classes:
            raise ValueError(
                f'TopKD needs 2 * topk <= C so that Pos and Neg do not overlap, got topk={self.topk} '
                f'for logits {tuple(student_logits.shape)} (C={num_classes}); lower topk'
            )

    def plain_terms(self, zs: Tensor, zt: Tensor, labels: Optional[Tensor]) -> Dict[str, Tensor]:
        """``{'pos', 'neg', 'non', 'contrast'}``, weighted scalars."""
        terms = self.weighted_means(tdl_per_position(zs, zt, self.topk, self.alpha, self.beta))
        contrast = (zs.sum() + zt.sum()) * 0
        if self.contrast_weight > 0:
            index = sample_rows(zs.shape[0], self.contrast_pixels, zs.device)
            if index is not None:
                zs, zt = zs[index], zt[index]
            contrast = batch_contrastive(zs, zt, self.tau)
        terms['contrast'] = self.loss_weight * self.contrast_weight * contrast
        return terms

    def extra_repr(self) -> str:
        return (
            f'topk={self.topk}, alpha={self.alpha}, beta={self.beta}, '
            f'contrast_weight={self.contrast_weight}, tau={self.tau}, '
            f'contrast_pixels={self.contrast_pixels}, ' + super().extra_repr()
        )
