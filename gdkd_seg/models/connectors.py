"""Connectors: trainable maps from student features to the teacher's channels (training-only modules)."""

from typing import Optional

from mmcv.cnn import build_norm_layer
from mmseg.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class FeatureProjector(nn.Module):
    """A 1x1 convolution from ``in_channels`` (student) to ``out_channels`` (teacher), optionally normalised.

    Without ``norm_cfg`` it is a bias-free 1x1 conv (the feature-only KD projector, Cooper et al. 2025);
    with ``norm_cfg=dict(type='BN')`` it is 1x1 conv + BN (the stepping-stone connector, Yu et al. 2024).
    Used as ``connector=dict(type='FeatureProjector', ...)`` in a ``distill_losses`` item it lives in the
    distiller, outside ``student``, so exported students never contain it.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: Optional[dict] = None):
        super().__init__()
        for name, value in (('in_channels', in_channels), ('out_channels', out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'FeatureProjector {name} must be a positive integer, got {value!r}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1] if norm_cfg else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'FeatureProjector expects (N, {self.in_channels}, H, W) features, got '
                f"{tuple(x.shape)}: set in_channels to the student layer's channel count"
            )
        x = self.conv(x)
        return x if self.norm is None else self.norm(x)
