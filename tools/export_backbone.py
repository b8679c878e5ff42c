"""Turn a classification checkpoint (ClsDistiller or ImageClassifier) into a backbone checkpoint that starts
a segmentor, the way ``open-mmlab://resnet18_v1c`` does.

    python tools/export_backbone.py CHECKPOINT OUT.pth [--check-config SEG_CONFIG]

OUT.pth holds the backbone's weights under the backbone's own keys (``stem.0.weight``, ``layer1.0...``).
A segmentation student then starts from it with, in its config,

    model = dict(student=dict(cfg_path=..., pretrained='OUT.pth'))          # a distiller's student
    model = dict(pretrained='OUT.pth')                                      # a plain MMSeg segmentor

or ``backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='OUT.pth'))``. ``--check-config`` loads
OUT.pth strictly into that config's segmentation backbone (``model.student`` for distillers) and fails
naming every missing, unexpected or mis-shaped key.
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import load_checkpoint

import gdkd_seg  # noqa: F401
from gdkd_seg.models import resolve_model_cfg
from gdkd_seg.utils import safe_torch_load

BACKBONE_PREFIXES = ('student.backbone.', 'backbone.')  # ClsDistiller, then ImageClassifier / segmentors
DISTILLERS = ('SegDistiller', 'ClsDistiller')


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
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    meta = {k: v for k, v in ckpt.get('meta', {}).items() if k in ('epoch', 'iter', 'seed', 'experiment_name')}
    meta['exported_from'] = osp.abspath(checkpoint_path)
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    torch.save(dict(state_dict=backbone_state_dict(state, prefix), meta=meta), out_path)
    return out_path


def segmentation_backbone(config_path: str):
    """The backbone of the config's segmentor (``model.student`` for distillers), built without weights."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(config_path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = cfg.model
    if model.get('type') in DISTILLERS:
        model = model.student
    model = resolve_model_cfg(model)
    backbone = dict(model['backbone'])
    backbone.pop('pretrained', None)
    backbone.pop('init_cfg', None)
    return MODELS.build(backbone)


def check_backbone_fits(config_path: str, backbone_checkpoint: str):
    """Load ``backbone_checkpoint`` strictly (MMEngine's loader) into the config's segmentation backbone;
    MMEngine raises a RuntimeError listing any missing, unexpected or mis-shaped key."""
    backbone = segmentation_backbone(config_path)
    load_checkpoint(backbone, backbone_checkpoint, map_location='cpu', strict=True, logger='current')
    return backbone


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='ClsDistiller or ImageClassifier checkpoint (e.g. epoch_100.pth)')
    parser.add_argument('out', help='output backbone checkpoint (.pth)')
    parser.add_argument('--prefix', help=f'key prefix of the backbone (default: the first of {BACKBONE_PREFIXES} '
                                         'present)')
    parser.add_argument('--check-config', help='a segmentation (or SegDistiller) config whose backbone must load '
                                               'the export with no missing or unexpected keys')
    args = parser.parse_args(argv)
    out = export_backbone(args.checkpoint, args.out, args.prefix)
    print(f'backbone checkpoint: {out}')
    if args.check_config:
        check_backbone_fits(args.check_config, out)
        print(f'loads into the backbone of {args.check_config} with no missing or unexpected keys')


if __name__ == '__main__':
    main()
