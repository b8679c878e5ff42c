"""Exports of trained distillers: the student as a plain MMSeg checkpoint and config, and a classification
student's backbone as the pretrained weights of a segmentor (``tools/export_student.py``,
``tools/export_backbone.py``)."""
import os
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint

from mmseg.registry import MODELS
from .models import resolve_model_cfg
from .utils import safe_torch_load

DISTILLERS = ('SegDistiller', 'ClsDistiller')
BACKBONE_PREFIXES = ('student.backbone.', 'backbone.')  # ClsDistiller, then classifiers / segmentors


def student_config(cfg: Config) -> Config:
    """The distiller config with ``model`` replaced by the student's (and no DistillerHook)."""
    if cfg.model.get('type') not in DISTILLERS:
        raise ValueError(f'{cfg.filename} is not a distiller config (model.type is {cfg.model.get("type")})')
    cfg = cfg.copy()
    cfg.model = resolve_model_cfg(cfg.model.student)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'DistillerHook']
    return cfg


def export_student(config_path: str, checkpoint_path: str, out_path: str):
    """Write ``out_path`` (the student's state_dict and meta) and ``out_path`` with ``.py`` (a plain config
    of the student), so that ``mmseg.apis.init_model(OUT.py, OUT.pth)`` predicts exactly as the distiller
    does. Returns both paths."""
    cfg = Config.fromfile(config_path)
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    student = {k[len('student.'):]: v for k, v in state.items() if k.startswith('student.')}
    if not student:
        raise ValueError(f'{checkpoint_path} has no "student." weights: is it a distiller checkpoint?')
    meta = dict(ckpt.get('meta', {}))
    meta.pop('cfg', None)
    meta['exported_from'] = osp.abspath(checkpoint_path)
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    torch.save(dict(state_dict=student, meta=meta), out_path)
    config_out = osp.splitext(out_path)[0] + '.py'
    student_config(cfg).dump(config_out)
    return out_path, config_out


def backbone_state_dict(state_dict: dict, prefix=None) -> dict:
    """The entries under ``prefix`` (found among BACKBONE_PREFIXES when None), without it."""
    if prefix is None:
        prefix = next((p for p in BACKBONE_PREFIXES if any(k.startswith(p) for k in state_dict)), None)
    backbone = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)} if prefix else {}
    if not backbone:
        raise ValueError(f'No backbone weights under {prefix or " or ".join(BACKBONE_PREFIXES)!r}; the checkpoint '
                         f'keys start like {sorted(state_dict)[:5]}. Pass --prefix for another layout.')
    return backbone


def export_backbone(checkpoint_path: str, out_path: str, prefix=None) -> str:
    """Write the backbone of a classification checkpoint (ClsDistiller or ImageClassifier) under the
    backbone's own keys, as ``open-mmlab://resnet18_v1c`` holds them."""
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    meta = {k: v for k, v in ckpt.get('meta', {}).items() if k in ('epoch', 'iter', 'seed', 'experiment_name')}
    meta['exported_from'] = osp.abspath(checkpoint_path)
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    torch.save(dict(state_dict=backbone_state_dict(state, prefix), meta=meta), out_path)
    return out_path


def segmentation_backbone(config_path: str):
    """The backbone of the config's segmentor (``model.student`` for distillers), built without weights."""
    cfg = Config.fromfile(config_path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = cfg.model
    if model.get('type') in DISTILLERS:
        model = model.student
    backbone = dict(resolve_model_cfg(model)['backbone'])
    backbone.pop('pretrained', None)
    backbone.pop('init_cfg', None)
    return MODELS.build(backbone)


def check_backbone_fits(config_path: str, backbone_checkpoint: str):
    """Load ``backbone_checkpoint`` strictly (MMEngine's loader) into the config's segmentation backbone;
    MMEngine raises a RuntimeError listing any missing, unexpected or mis-shaped key."""
    backbone = segmentation_backbone(config_path)
    load_checkpoint(backbone, backbone_checkpoint, map_location='cpu', strict=True, logger='current')
    return backbone
