"""Exports of trained distillers: the student as a plain MMSeg checkpoint and config, and a classification
student's backbone as the pretrained weights of a segmentor (``tools/export_student.py``,
``tools/export_backbone.py``)."""

import io
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import MODELS

from .config import resolve_model_cfg
from .models.cls_distiller import build_classifier
from .utils import CheckpointMismatchError, atomic_write, check_state_dict_fits, safe_torch_load, state_dict_of

DISTILLERS = ('SegDistiller', 'ClsDistiller')
DISTILL_HOOKS = ('DistillWarmupHook', 'TeacherEvalHook')
BACKBONE_PREFIXES = ('student.backbone.', 'backbone.')  # ClsDistiller, then classifiers / segmentors


def student_config(cfg: Config) -> Config:
    """The distiller config with ``model`` replaced by the student's (and no distillation hooks)."""
    if cfg.model.get('type') not in DISTILLERS:
        raise ValueError(f'{cfg.filename} is not a distiller config (model.type is {cfg.model.get("type")})')
    cfg = cfg.copy()
    cfg.model = resolve_model_cfg(cfg.model.student)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') not in DISTILL_HOOKS]
    return cfg


def build_student(cfg: Config):
    """The student of a distiller config, built without weights (in the config's default scope)."""
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        if cfg.model.type == 'ClsDistiller':
            return build_classifier(cfg.model.student)
        return MODELS.build(resolve_model_cfg(cfg.model.student))


def export_student(config_path: str, checkpoint_path: str, out_path: str):
    """Write ``out_path`` (the student's state_dict and meta) and ``out_path`` with ``.py`` (a plain config
    of the student), so that ``mmseg.apis.init_model(OUT.py, OUT.pth)`` predicts exactly as the distiller
    does. The student's weights must fit the config's student exactly; nothing is written otherwise, and
    both files are written atomically. Returns both paths."""
    cfg = Config.fromfile(config_path)
    plain = student_config(cfg)
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    state = state_dict_of(ckpt)
    student = {k[len('student.') :]: v for k, v in state.items() if k.startswith('student.')}
    if not student:
        raise CheckpointMismatchError(
            f'{checkpoint_path} has no "student." weights: it is not a distiller checkpoint (an exported student '
            'or a plain model already is what export_student writes)'
        )
    check_state_dict_fits(
        build_student(cfg),
        student,
        checkpoint_path,
        f'the student of {config_path}',
        'Export with the distiller config the checkpoint was trained with.',
    )
    meta = dict(ckpt.get('meta', {}))
    meta.pop('cfg', None)
    meta['exported_from'] = osp.abspath(checkpoint_path)
    config_out = osp.splitext(out_path)[0] + '.py'
    buffer = io.BytesIO()
    torch.save(dict(state_dict=student, meta=meta), buffer)
    atomic_write(buffer.getvalue(), out_path)
    atomic_write(plain.pretty_text.encode(), config_out)
    return out_path, config_out


def backbone_state_dict(state_dict: dict, prefix=None) -> dict:
    """The entries under ``prefix`` (found among BACKBONE_PREFIXES when None), without it."""
    if prefix is None:
        prefix = next((p for p in BACKBONE_PREFIXES if any(k.startswith(p) for k in state_dict)), None)
    backbone = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)} if prefix else {}
    if not backbone:
        raise ValueError(
            f'No backbone weights under {prefix or " or ".join(BACKBONE_PREFIXES)!r}; the checkpoint '
            f'keys start like {sorted(state_dict)[:5]}. Pass --prefix for another layout.'
        )
    return backbone


def export_backbone(checkpoint_path: str, out_path: str, prefix=None) -> str:
    """Write the backbone of a classification checkpoint (ClsDistiller or ImageClassifier) under the
    backbone's own keys, as ``open-mmlab://resnet18_v1c`` holds them."""
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    meta = {k: v for k, v in ckpt.get('meta', {}).items() if k in ('epoch', 'iter', 'seed', 'experiment_name')}
    meta['exported_from'] = osp.abspath(checkpoint_path)
    buffer = io.BytesIO()
    torch.save(dict(state_dict=backbone_state_dict(state, prefix), meta=meta), buffer)
    atomic_write(buffer.getvalue(), out_path)
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
