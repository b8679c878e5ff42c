"""The segmentor that is deployed: a student (or a plain MMSeg model) built from its config with its weights
loaded strictly, and :class:`PixelsToLogits`, its ``tensor`` mode behind the data preprocessor's channel swap
and normalisation, which is what gets exported and timed."""

from typing import Optional

import torch
from mmengine.config import Config
from torch import nn

from ..config import load_config
from ..export import build_model, build_student, student_entries
from ..utils import CheckpointMismatchError, check_state_dict_fits, safe_torch_load, state_dict_of

DISTILLER_TYPES = ('SegDistiller',)


class PixelsToLogits(nn.Module):
    """A segmentor's ``tensor`` mode behind its data preprocessor's channel swap and normalisation: takes float
    pixels (N, 3, H, W) as ``SegDataPreProcessor`` does, returns the decode head's logits (N, classes, h, w)."""

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = segmentor
        pre = segmentor.data_preprocessor
        self.bgr_to_rgb = bool(getattr(pre, 'channel_conversion', False))
        normalize = bool(getattr(pre, '_enable_normalize', False))
        self.register_buffer('mean', pre.mean.detach().clone().view(1, -1, 1, 1) if normalize else None)
        self.register_buffer('std', pre.std.detach().clone().view(1, -1, 1, 1) if normalize else None)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.bgr_to_rgb:
            pixels = pixels[:, [2, 1, 0]]
        if self.mean is not None:
            pixels = (pixels - self.mean) / self.std
        return self.segmentor(pixels, mode='tensor')


def build_segmentor(model_cfg, cfg: Config) -> nn.Module:
    """An MMSeg segmentor from an inline, file or ``mmseg::`` model config, without weights, in eval mode."""
    return build_model(model_cfg, cfg).eval()


def is_distiller(cfg: Config) -> bool:
    return cfg.model.get('type') in DISTILLER_TYPES


def _check_segmentation_config(cfg: Config, config_path: str) -> None:
    if cfg.model.get('type') == 'ClsDistiller':
        raise ValueError(
            f'{config_path} is a classification distiller (ClsDistiller): ONNX export and the cost table cover '
            'segmentation students. Export its backbone with tools/export_backbone.py instead.'
        )


def student_weights(checkpoint_path: str) -> dict:
    """The student's weights in a distiller checkpoint (under ``student.``) or an exported/plain checkpoint."""
    state = state_dict_of(safe_torch_load(checkpoint_path, map_location='cpu'))
    return student_entries(state) or state


def load_student(config_path: str, checkpoint_path: Optional[str] = None, cfg_options: Optional[dict] = None):
    """``(segmentor, cfg)``: the student of a SegDistiller config (or the model of a plain MMSeg config) in eval
    mode, with the checkpoint's weights loaded strictly (a distiller checkpoint, an exported student from
    tools/export_student.py, or a plain MMSeg checkpoint). Without a checkpoint the weights are random."""
    cfg = load_config(config_path, cfg_options)
    _check_segmentation_config(cfg, config_path)
    if is_distiller(cfg):
        model = build_student(cfg).eval()
    else:
        model = build_segmentor(cfg.model, cfg)
    if checkpoint_path is not None:
        state = student_weights(checkpoint_path)
        target = f'the student of {config_path}' if is_distiller(cfg) else f'the model of {config_path}'
        check_state_dict_fits(
            model,
            state,
            checkpoint_path,
            target,
            'Use the config the checkpoint was trained with (the distiller config, or the student.py written '
            'beside an exported student).',
            error=CheckpointMismatchError,
        )
        model.load_state_dict(state, strict=True)
    return model, cfg
