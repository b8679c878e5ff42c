from .cwd_loss import CWDLoss, cwd_per_channel
from .dist_loss import DISTLoss, dist_terms, pearson_correlation
from .dkd_loss import DKDLoss, dkd_group_ids, dkd_per_position
from .gdkd3_loss import GDKD3Loss, gdkd3_group_ids, gdkd3_per_position
from .gdkd_loss import GDKDLoss, gdkd_group_ids, gdkd_per_position
from .kd_loss import KDLoss, kd_per_position
from .topk_scaling import TopKScaling, rank_scales
from .topkd_loss import (TopKDLoss, batch_contrastive, tdl_group_masks,
                         tdl_per_position)
from .utils import (LogitDistillLoss, align_logits_and_labels,
                    flatten_logits_and_labels, grouped_kl, kl_per_row,
                    topk_partition_mask)

__all__ = [
    'GDKDLoss', 'GDKD3Loss', 'DKDLoss', 'KDLoss', 'DISTLoss', 'CWDLoss',
    'LogitDistillLoss', 'align_logits_and_labels',
    'flatten_logits_and_labels', 'topk_partition_mask', 'grouped_kl',
    'kl_per_row', 'gdkd_group_ids', 'gdkd_per_position', 'gdkd3_group_ids',
    'gdkd3_per_position', 'dkd_group_ids', 'dkd_per_position',
    'kd_per_position', 'dist_terms', 'pearson_correlation', 'cwd_per_channel',
    'TopKDLoss', 'TopKScaling', 'rank_scales', 'tdl_group_masks',
    'tdl_per_position', 'batch_contrastive'
]
