"""Pictures of GDKD's per-pixel top-k partitions (``tools/visualize_partitions.py`` and a training hook)."""

from .hook import PartitionVisualizationHook
from .images import visualize_partitions
from .partitions import (
    default_palette,
    describe_settings,
    draw_partitions,
    figure_layout,
    gdkd_settings,
    partition_figure,
    partition_maps,
    predict_logits,
)

__all__ = [
    'PartitionVisualizationHook',
    'partition_maps',
    'draw_partitions',
    'partition_figure',
    'figure_layout',
    'gdkd_settings',
    'describe_settings',
    'predict_logits',
    'default_palette',
    'visualize_partitions',
]
