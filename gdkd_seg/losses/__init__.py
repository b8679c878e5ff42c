"""The distillation losses: pure functions of tensors, registered in MMSeg's ``MODELS``.

One loss a file; :mod:`.base` holds their common plumbing (argument checks, the fused/plain choice),
:mod:`.functional` the tensor maths they share and :mod:`.fused` the fused GDKD/DKD kernels.

Every ``*_loss.py`` module of this folder is imported (so its classes are registered) by the loop at the end:
a new loss is one file, with no list to edit. A loss kept in your own project is registered by the config's
``custom_imports`` instead (README: "Adding a method").
"""

import importlib
import pkgutil

from .base import LogitDistillLoss
from .blockwise_kd_loss import BlockwiseKDLoss, stone_cross_entropy
from .cwd_loss import CWDLoss, cwd_per_channel
from .dist_loss import DISTLoss, dist_terms, pearson_correlation
from .dkd_loss import DKDLoss, dkd_group_ids, dkd_per_position
from .feature_kd_loss import FeatureKDLoss, pool_to_common_size
from .functional import align_logits_and_labels, flatten_logits_and_labels, grouped_kl, kl_per_row, topk_partition_mask
from .fused import fused_dkd_terms, fused_gdkd_terms
from .gdkd3_loss import GDKD3Loss, gdkd3_group_ids
from .gdkd_loss import GDKDLoss, gdkd_group_ids, gdkd_per_position, grouped_kd_per_position
from .kd_loss import KDLoss, kd_per_position
from .topk_scaling import TopKScaling, rank_scales
from .topkd_loss import TopKDLoss, batch_contrastive, tdl_group_masks, tdl_per_position

__all__ = [
    'GDKDLoss',
    'GDKD3Loss',
    'DKDLoss',
    'KDLoss',
    'DISTLoss',
    'CWDLoss',
    'TopKDLoss',
    'BlockwiseKDLoss',
    'FeatureKDLoss',
    'TopKScaling',
    'LogitDistillLoss',
    'align_logits_and_labels',
    'flatten_logits_and_labels',
    'topk_partition_mask',
    'grouped_kl',
    'kl_per_row',
    'gdkd_group_ids',
    'gdkd_per_position',
    'gdkd3_group_ids',
    'grouped_kd_per_position',
    'dkd_group_ids',
    'dkd_per_position',
    'kd_per_position',
    'dist_terms',
    'pearson_correlation',
    'cwd_per_channel',
    'fused_gdkd_terms',
    'fused_dkd_terms',
    'rank_scales',
    'tdl_group_masks',
    'tdl_per_position',
    'batch_contrastive',
    'stone_cross_entropy',
    'pool_to_common_size',
]

for _module in pkgutil.iter_modules(__path__):
    if _module.name.endswith('_loss'):
        importlib.import_module(f'{__name__}.{_module.name}')
