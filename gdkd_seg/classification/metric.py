"""Top-k accuracy as an MMEngine metric."""
from typing import Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmseg.registry import METRICS


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent of the samples' ``pred_score`` against ``gt_label``, logged as
    ``accuracy/top1``, ``accuracy/top5``, ... Only the top ``max(topk)`` class indices of each sample are
    kept until the end of the evaluation."""

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, 5), collect_device: str = 'cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        topk = (topk,) if isinstance(topk, int) else tuple(topk)
        if not topk or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in topk):
            raise ValueError(f'topk must be positive integers, got {topk!r}')
        self.topk = topk

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = sample['pred_score']
            k = min(max(self.topk), score.numel())
            self.results.append((score.topk(k).indices.cpu(), int(sample['gt_label'])))

    def compute_metrics(self, results: list) -> dict:
        labels = torch.tensor([label for _, label in results])
        hits = torch.stack([indices for indices, _ in results]) == labels[:, None]
        return {f'top{k}': hits[:, :k].any(dim=1).float().mean().item() * 100 for k in self.topk}
