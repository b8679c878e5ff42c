"""Knowledge quality of a layer's features (Cooper et al., arXiv 2511.14981): which teacher layer to distil.

For a sample of labelled positions (pixels with their class, for segmentation) and the layer's feature
vector at each, ``Q = S + sqrt(I * E)``:

* **S, separation**: mean intra-class minus mean inter-class absolute cosine similarity. High when
  positions of one class point the same way and positions of different classes do not.
* **I, information**: ``(1 - mean over classes of the minimum intra-class |cos|) * mean over classes of
  the normalised entropy of the class's PCA spectrum``. The first factor is high when each class still
  spans wide angles (its two most different positions are far apart); the second when each class's
  variance spreads evenly over many directions rather than a few. Together: how much within-class
  detail the layer keeps for the student to learn.
* **E, efficiency**: ``2 * mean over classes of the distance to the nearest position of another class,
  over the mean feature norm, times (N / pi)^(1 / r)``: how much room separates the classes relative to
  the features' scale. ``(N / pi)^(1 / r)`` is the dataset-size factor of the authors' code (N samples
  in the dataset, r the dimension of the sampled features, here their numerical rank); for the
  hundreds of channels of a segmentation backbone it is close to 1.

S rewards separated classes; sqrt(I * E) rewards rich but well-spaced classes. Q compares the layers of
one trained network; it does not tell structure from noise (i.i.d. high-dimensional noise has S = 0 but
high I and E, hence a fairly high Q).

Differences from the authors' classification code, where whole images are the samples: positions are
sampled per class (:func:`sample_labelled_positions`), and the spectrum entropy is normalised by the log
of the class's number of components, so that it lies in [0, 1]. The factor 2 in E follows their code.
"""

import math
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


class KnowledgeQuality(NamedTuple):
    separation: float  # S
    information: float  # I
    efficiency: float  # E
    quality: float  # Q = S + sqrt(I * E)
    num_samples: int
    num_classes: int

    def as_dict(self) -> Dict[str, float]:
        return self._asdict()


def sample_labelled_positions(
    features: Tensor,
    labels: Tensor,
    per_class: int,
    ignore_index: Optional[int] = 255,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    """Up to ``per_class`` random positions of each class from a feature map and its label map.

    Args:
        features: ``(N, C, h, w)`` features of a layer.
        labels: ``(N, H, W)`` (or ``(N, 1, H, W)``) class labels, resized to ``(h, w)`` by nearest.
        per_class: how many positions to keep per class at most.
        ignore_index: label of positions to leave out.

    Returns:
        ``(P, C)`` feature vectors and their ``(P,)`` labels.
    """
    if features.dim() != 4:
        raise ValueError(f'expected (N, C, h, w) features, got {tuple(features.shape)}')
    if labels.dim() == 4 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 3 or labels.shape[0] != features.shape[0]:
        raise ValueError(f'expected (N, H, W) labels for features {tuple(features.shape)}, got {tuple(labels.shape)}')
    size = features.shape[-2:]
    labels = F.interpolate(labels[:, None].float(), size=size, mode='nearest')[:, 0].long().flatten()
    rows = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    keep = []
    for cls in labels.unique().tolist():
        if cls == ignore_index:
            continue
        index = (labels == cls).nonzero()[:, 0]
        order = torch.randperm(index.numel(), generator=generator)[:per_class]
        keep.append(index[order.to(index.device)])
    if not keep:
        return rows[:0], labels[:0]
    keep = torch.cat(keep)
    return rows[keep], labels[keep]


def _upper_triangle(block: Tensor) -> Tensor:
    rows, cols = torch.triu_indices(block.shape[0], block.shape[1], offset=1, device=block.device)
    return block[rows, cols]


def spectrum_entropy(class_features: Tensor) -> float:
    """Entropy of the PCA spectrum (explained-variance ratios) of one class, divided by its maximum.

    1 when the class's variance is spread evenly over all ``min(n - 1, C)`` principal directions, 0 when
    it lies along one direction.
    """
    centred = class_features - class_features.mean(0, keepdim=True)
    variances = torch.linalg.svdvals(centred) ** 2
    components = min(class_features.shape[0] - 1, class_features.shape[1])
    total = variances.sum()
    if components < 2 or total <= 0:
        return 0.0
    ratios = variances[variances > total * 1e-12] / total
    return float(-(ratios * ratios.log()).sum() / math.log(components))


def knowledge_quality(
    features: Tensor, labels: Tensor, dataset_size: Optional[int] = None, eps: float = 1e-12
) -> KnowledgeQuality:
    """Knowledge quality ``Q = S + sqrt(I * E)`` of labelled feature vectors (see the module docstring).

    Args:
        features: ``(P, C)`` feature vectors.
        labels: ``(P,)`` integer labels; classes with fewer than 2 samples are left out.
        dataset_size: N of the efficiency's dataset-size factor (default: P).
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f'expected (P, C) features and (P,) labels, got {tuple(features.shape)} and {tuple(labels.shape)}'
        )
    x = features.detach().double()
    classes = [c for c in labels.unique().tolist() if int((labels == c).sum()) >= 2]
    if len(classes) < 2:
        raise ValueError(
            f'knowledge quality needs at least 2 classes with 2 or more samples each, got '
            f'{labels.unique().numel()} classes in {labels.numel()} samples: sample more positions'
        )
    index = [(labels == c).nonzero()[:, 0] for c in classes]
    x = x[torch.cat(index)]
    bounds = torch.tensor([0] + [len(i) for i in index]).cumsum(0).tolist()
    spans = [slice(bounds[k], bounds[k + 1]) for k in range(len(classes))]

    norms = x.norm(dim=1)
    unit = x / norms.clamp_min(eps)[:, None]
    abs_cos = (unit @ unit.T).abs()
    distance = torch.cdist(x, x)

    # S: same-class pairs (i < j) against pairs from two different classes.
    intra = [_upper_triangle(abs_cos[s, s]) for s in spans]
    mean_intra = torch.stack([v.mean() for v in intra]).mean()
    mean_inter = torch.stack([abs_cos[a, b].mean() for a in spans for b in spans if a != b]).mean()
    separation = float(mean_intra - mean_inter)

    # I: angular spread of each class times the evenness of its variance over directions.
    min_intra = torch.stack([v.min() for v in intra]).mean()
    entropy = sum(spectrum_entropy(x[s]) for s in spans) / len(spans)
    information = float(1 - min_intra) * entropy

    # E: nearest other-class distance per class, relative to the mean feature norm, with the
    # dataset-size factor (N / pi)^(1 / r).
    nearest = []
    for s in spans:
        others = torch.ones(x.shape[0], dtype=torch.bool)
        others[s] = False
        nearest.append(distance[s][:, others].min())
    mean_norm = torch.stack([norms[s].mean() for s in spans]).mean()
    rank = max(int(torch.linalg.matrix_rank(x)), 1)
    size_factor = ((dataset_size or x.shape[0]) / math.pi) ** (1 / rank)
    efficiency = float(2 * torch.stack(nearest).mean() / mean_norm.clamp_min(eps)) * size_factor

    quality = separation + math.sqrt(max(information * efficiency, 0.0))
    return KnowledgeQuality(separation, information, efficiency, quality, x.shape[0], len(classes))
