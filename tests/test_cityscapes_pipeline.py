"""The user's main path on a generated Cityscapes-format tree: the real GDKD config (R101 teacher, R18
student), shrunk to small crops and a few iterations, through tools/train.py, --resume, tools/test.py and
tools/export_student.py, then the exported student in plain MMSeg."""

import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import write_cityscapes_tree
from mmengine.config import Config

from gdkd_seg import runner
from gdkd_seg.export import export_student

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GDKD_CONFIG = osp.join(ROOT, 'configs', 'gdkd_deeplabv3_r101_r18_cityscapes.py')


def small_config(cfg_path, data_root, teacher_ckpt, out_path, max_iters):
    """The real config with small crops, BN instead of SyncBN, no pretrained download, a few iterations."""
    cfg = Config.fromfile(cfg_path)
    bn = dict(type='BN', requires_grad=True)
    heads = dict(backbone=dict(norm_cfg=bn), decode_head=dict(norm_cfg=bn), auxiliary_head=dict(norm_cfg=bn))
    student = cfg.model.student
    student = dict(cfg_path=student) if isinstance(student, str) else dict(student)
    cfg.model.student = dict(student, pretrained=None, data_preprocessor=dict(size=(64, 128)), **heads)
    cfg.model.teacher = dict(cfg_path=cfg.model.teacher, **heads)
    cfg.model.teacher_checkpoint = teacher_ckpt
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.batch_size = 2
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[2].scale = (256, 128)
    pipeline[3].crop_size = (64, 128)
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.pipeline[1].scale = (256, 128)
    cfg.test_pipeline[1].scale = (256, 128)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=2)
    cfg.param_scheduler[0].end = max_iters
    cfg.default_hooks.checkpoint.update(interval=2, save_best=None, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    cfg.dump(out_path)
    return out_path


@pytest.mark.slow
def test_gdkd_cityscapes_train_resume_test_export(tmp_path):
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import MODELS

    from gdkd_seg.config import resolve_model_cfg

    data_root = write_cityscapes_tree(str(tmp_path / 'cityscapes'))
    base = Config.fromfile(GDKD_CONFIG)
    teacher = MODELS.build(
        resolve_model_cfg(dict(cfg_path=base.model.teacher, backbone=dict(norm_cfg=dict(type='BN'))))
    )
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, teacher_ckpt)

    work = str(tmp_path / 'work')
    cfg2 = small_config(GDKD_CONFIG, data_root, teacher_ckpt, str(tmp_path / 'gdkd2.py'), max_iters=2)
    runner.train(cfg2, work_dir=work)
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    scalars = [
        json.loads(line)
        for line in open(next(iter(__import__('glob').glob(osp.join(work, '*', 'vis_data', 'scalars.json')))))
    ]
    assert any('mIoU' in s for s in scalars), 'validation did not log mIoU'
    train_logged = [s for s in scalars if 'distill.decode.gdkd_other' in s]
    assert train_logged and all(np.isfinite(s['distill.decode.loss_gdkd']) for s in train_logged)
    assert __import__('glob').glob(osp.join(work, '*', 'vis_data', 'events.out.tfevents.*'))  # TensorBoard too

    cfg4 = small_config(GDKD_CONFIG, data_root, teacher_ckpt, str(tmp_path / 'gdkd4.py'), max_iters=4)
    runner.train(cfg4, work_dir=work, resume=True)
    ckpt = torch.load(osp.join(work, 'iter_4.pth'), weights_only=False)
    assert ckpt['meta']['iter'] == 4
    assert not any(k.startswith('teacher') for k in ckpt['state_dict'])

    metrics = runner.test(cfg4, osp.join(work, 'iter_4.pth'), work_dir=str(tmp_path / 'test'))
    assert 0.0 <= metrics['mIoU'] <= 100.0

    exported, student_cfg = export_student(cfg4, osp.join(work, 'iter_4.pth'), str(tmp_path / 'student.pth'))
    plain = init_model(student_cfg, exported, device='cpu')
    distiller = MODELS.build(Config.fromfile(cfg4).model)
    distiller.load_state_dict(ckpt['state_dict'])
    distiller.cfg = Config.fromfile(cfg4)
    distiller.eval()
    image = osp.join(data_root, 'leftImg8bit', 'val', 'aachen', 'aachen_000000_000019_leftImg8bit.png')
    ours = inference_model(distiller, image).seg_logits.data
    theirs = inference_model(plain, image).seg_logits.data
    assert torch.equal(ours, theirs)


def test_missing_cityscapes_root_fails_before_building_models(tmp_path):
    from gdkd_seg.datasets.checks import DatasetNotFoundError

    missing = str(tmp_path / 'nowhere')
    with pytest.raises(DatasetNotFoundError, match=r'nowhere/leftImg8bit/train.*README'):
        runner.train(GDKD_CONFIG, {'train_dataloader.dataset.data_root': missing}, work_dir=str(tmp_path / 'w'))


def test_every_config_builds():
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    from gdkd_seg.config import load_config

    configs = sorted(__import__('glob').glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
    configs = [c for c in configs if '_base_' not in c]
    assert len(configs) >= 12
    for path in configs:
        cfg = load_config(path)  # resolves a plain model given as dict(cfg_path=...)
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
            model = MODELS.build(cfg.model)
        assert model is not None, path
        declarations = cfg.model.get('distill_losses')
        assert declarations is None or isinstance(declarations, dict), path
        for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'train_cfg'):
            assert key in cfg, f'{path} lacks {key}'


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_the_distiller(tmp_path):
    """torchrun --nproc_per_node=2 with the gloo backend trains a few distiller iterations."""
    from helpers import runner_cfg, tiny_segmentor, write_seg_folder
    from mmseg.registry import MODELS

    root = write_seg_folder(str(tmp_path / 'data'), n_train=4)
    teacher = MODELS.build(tiny_segmentor(3, width=16, aux=True))
    torch.save({'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')
    model = dict(
        type='SegDistiller',
        student=tiny_segmentor(3, width=8, aux=True),
        teacher=tiny_segmentor(3, width=16, aux=True),
        teacher_checkpoint=str(tmp_path / 'teacher.pth'),
        distill_losses=dict(
            decode=dict(
                student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(type='GDKDLoss', topk=1)
            )
        ),
    )
    cfg = runner_cfg(tmp_path / 'work', root, model, max_iters=2, val=False)
    cfg.custom_imports = dict(imports=['gdkd_seg'])
    cfg.log_level = 'INFO'
    cfg.dump(str(tmp_path / 'dist.py'))
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node=2',
            '--master_port=29517',
            osp.join(ROOT, 'tools', 'train.py'),
            str(tmp_path / 'dist.py'),
            '--launcher',
            'pytorch',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert osp.isfile(tmp_path / 'work' / 'iter_2.pth')
    from gdkd_seg.utils import safe_torch_load

    assert len(safe_torch_load(str(tmp_path / 'work' / 'iter_2.pth'))['random_states']) == 2  # one per rank
    log = next(iter(__import__('glob').glob(str(tmp_path / 'work' / '*' / '*.log'))))
    text = open(log).read()
    assert 'Distributed training: True' in text and 'GPU number: 2' in text  # MMEngine's name for world size


def test_the_documented_data_root_override_reaches_wrapped_data_sets(tmp_path):
    """Pascal VOC aug trains on a ConcatDataset: --cfg-options train_dataloader.dataset.data_root=DIR reaches both
    of its data sets, so the override the data checks recommend works for every data set config."""
    from gdkd_seg.config import load_config
    from gdkd_seg.datasets.checks import DatasetNotFoundError, check_data_roots, leaf_datasets

    config = osp.join(ROOT, 'configs', 'voc12aug', 'gdkd_deeplabv3_r101_r18_voc12aug.py')
    missing = str(tmp_path / 'nowhere')
    cfg = load_config(config, {'train_dataloader.dataset.data_root': missing})
    leaves = leaf_datasets(cfg.train_dataloader.dataset)
    assert len(leaves) == 2 and all(leaf.data_root == missing for leaf in leaves)
    assert 'data_root' not in cfg.train_dataloader.dataset
    with pytest.raises(DatasetNotFoundError, match='train_dataloader.dataset.data_root=') as refused:
        check_data_roots(cfg, ('train_dataloader',))
    assert missing in str(refused.value)
