"""Turn a distiller checkpoint into a plain MMSegmentation checkpoint of its student.

    python tools/export_student.py CONFIG CHECKPOINT OUT.pth

Writes OUT.pth (the student's state_dict and meta) and OUT.py (a plain MMSeg config of the student, the
distiller config with ``model`` replaced by ``model.student``), so that
``mmseg.apis.init_model('OUT.py', 'OUT.pth')`` predicts exactly as the distiller does.
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config

import gdkd_seg  # noqa: F401
from gdkd_seg.models import resolve_model_cfg
from gdkd_seg.utils import safe_torch_load


def student_config(cfg: Config) -> Config:
    if cfg.model.get('type') not in ('SegDistiller', 'ClsDistiller'):
        raise ValueError(f'{cfg.filename} is not a distiller config (model.type is {cfg.model.get("type")})')
    cfg = cfg.copy()
    cfg.model = resolve_model_cfg(cfg.model.student)
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'DistillerHook']
    return cfg


def export_student(config_path, checkpoint_path, out_path):
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the distiller config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='distiller checkpoint (e.g. work_dirs/.../iter_40000.pth)')
    parser.add_argument('out', help='output checkpoint path (.pth); the student config goes beside it (.py)')
    args = parser.parse_args(argv)
    ckpt, cfg = export_student(args.config, args.checkpoint, args.out)
    print(f'student checkpoint: {ckpt}\nstudent config:     {cfg}')


if __name__ == '__main__':
    main()
