"""What the tests share: small generated data and models (CPU, seconds), the repository's configs shrunk to
them, and reference implementations of the losses. Tests import it as a top-level module (tests/conftest.py)."""

import glob
import json
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS
from PIL import Image

from gdkd_seg.config import resolve_model_cfg
from gdkd_seg.datasets.checks import leaf_datasets

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def write_seg_folder(root, n_train=4, n_val=2, size=(64, 64), num_classes=3, seed=0):
    """Images with coloured rectangles and matching label maps in MMSeg's img_dir/ann_dir layout."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(num_classes, 3))
    for split, n in (('train', n_train), ('val', n_val)):
        for i in range(n):
            label = np.zeros(size, np.uint8)
            for c in range(1, num_classes):
                y, x = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
                h, w = rng.integers(size[0] // 4, size[0] // 2, size=2)
                label[y : y + h, x : x + w] = c
            img = colours[label] + rng.integers(0, 30, size=(*size, 3))
            for sub, arr in (('img_dir', img.clip(0, 255).astype(np.uint8)), ('ann_dir', label)):
                path = osp.join(root, sub, split, f'{i:03d}.png')
                __import__('os').makedirs(osp.dirname(path), exist_ok=True)
                Image.fromarray(arr).save(path)
    return root


def tiny_segmentor(num_classes=3, width=16, aux=False):
    """An MMSeg EncoderDecoder with a thin ResNetV1c-18 (about 0.2 M parameters)."""
    norm = dict(type='BN', requires_grad=True)
    model = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            pad_val=0,
            seg_pad_val=255,
            size_divisor=8,
        ),
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            stem_channels=width,
            base_channels=width,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=norm,
            contract_dilation=True,
        ),
        decode_head=dict(
            type='FCNHead',
            in_channels=width * 8,
            in_index=3,
            channels=width,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0),
        ),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'),
    )
    if aux:
        model['auxiliary_head'] = dict(
            type='FCNHead',
            in_channels=width * 4,
            in_index=2,
            channels=width,
            num_convs=1,
            concat_input=False,
            dropout_ratio=0.0,
            num_classes=num_classes,
            norm_cfg=norm,
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4),
        )
    return ConfigDict(model)  # MMSeg reads test_cfg.mode as an attribute


def save_random_segmentor(path, seed=0, num_classes=3, width=16, aux=True):
    """A checkpoint of a randomly initialised :func:`tiny_segmentor` (a teacher for the tests); returns path."""
    torch.manual_seed(seed)
    torch.save({'state_dict': MODELS.build(tiny_segmentor(num_classes, width=width, aux=aux)).state_dict()}, path)
    return path


def seg_dataloader(root, split, num_classes=3, batch_size=2, train=True):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
    dataset = dict(
        type='BaseSegDataset',
        data_root=root,
        img_suffix='.png',
        seg_map_suffix='.png',
        metainfo=dict(
            classes=[f'c{i}' for i in range(num_classes)],
            palette=[[i * 60 % 256, i * 110 % 256, i * 170 % 256] for i in range(num_classes)],
        ),
        data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
        pipeline=pipeline,
    )
    return dict(
        batch_size=batch_size if train else 1,
        num_workers=0,
        sampler=dict(type='InfiniteSampler' if train else 'DefaultSampler', shuffle=train),
        dataset=dataset,
    )


def runner_cfg(work_dir, root, model, max_iters=2, num_classes=3, val=True):
    """A complete MMEngine Runner config (iteration-based) around ``model``."""
    cfg = dict(
        default_scope='mmseg',
        work_dir=str(work_dir),
        model=model,
        train_dataloader=seg_dataloader(root, 'train', num_classes),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
        param_scheduler=[dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)],
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
            sampler_seed=dict(type='DistSamplerSeedHook'),
        ),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        log_level='WARNING',
    )
    if val:
        cfg.update(
            val_dataloader=seg_dataloader(root, 'val', num_classes, train=False),
            val_cfg=dict(type='ValLoop'),
            val_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
            test_dataloader=seg_dataloader(root, 'val', num_classes, train=False),
            test_cfg=dict(type='TestLoop'),
            test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU']),
        )
    return Config(cfg)


def _register_test_hooks():
    import os
    import signal

    from mmengine.hooks import Hook
    from mmseg.registry import HOOKS

    @HOOKS.register_module(force=True)
    class KillAtIteration(Hook):
        """``kill -9`` of the training process itself once ``at`` iterations have finished."""

        def __init__(self, at):
            self.at = at

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == self.at:
                os.kill(os.getpid(), signal.SIGKILL)


_register_test_hooks()


def write_cityscapes_tree(root, n_train=2, n_val=1, size=(128, 256), seed=0):
    """leftImg8bit/ and gtFine/ with Cityscapes' file names; 19 train ids plus ignored (255) pixels."""
    rng = np.random.default_rng(seed)
    for split, n in (('train', n_train), ('val', n_val)):
        for i in range(n):
            stem = f'{root}/%s/{split}/aachen/aachen_{i:06d}_000019_%s.png'
            label = rng.integers(0, 19, size=(size[0] // 16, size[1] // 16)).repeat(16, 0).repeat(16, 1)
            label[:8] = 255
            image = (label[..., None] * 13 % 256 + rng.integers(0, 40, (*size, 3))).clip(0, 255)
            for sub, kind, arr in (('leftImg8bit', 'leftImg8bit', image), ('gtFine', 'gtFine_labelTrainIds', label)):
                path = stem % (sub, kind)
                __import__('os').makedirs(osp.dirname(path), exist_ok=True)
                Image.fromarray(arr.astype(np.uint8)).save(path)
    return root


CONFIGS = osp.join(ROOT, 'configs')
BN = dict(type='BN', requires_grad=True)
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
UNUSED_KEYS = (
    'tta_pipeline',
    'tta_model',
    'img_ratios',
    'train_pipeline',
    'dataset_train',
    'dataset_aug',
    'gdkd',
    'deeplabv3_r18_student',
    'deeplabv3_r101_teacher',
    'deeplabv3_r101_checkpoint',
    'mit_b0_channels',
)


def merged(base: dict, delta: dict) -> dict:
    """``base`` with ``delta`` merged in, nested dicts key by key (as MMEngine merges configs)."""
    out = dict(base)
    for key, value in delta.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def small_model(model, crop, student=True):
    """A student or teacher declaration with BN instead of SyncBN and no pretrained download."""
    model = dict(cfg_path=model) if isinstance(model, str) else dict(model)
    resolved = resolve_model_cfg(model)
    delta = dict(decode_head=dict(norm_cfg=BN))
    if resolved.get('auxiliary_head'):
        delta['auxiliary_head'] = dict(norm_cfg=BN)
    if 'norm_cfg' in resolved.backbone:
        delta['backbone'] = dict(norm_cfg=BN)
    if student:
        delta.update(pretrained=None, data_preprocessor=dict(size=crop))
        if resolved.backbone.get('init_cfg'):
            delta.setdefault('backbone', {})['init_cfg'] = None
    return merged(model, delta)


def shrink(cfg_path, data_root, teacher_ckpt, out_path, crop=(32, 32), scale=(64, 32), max_iters=2):
    """The real config with tiny crops, BN instead of SyncBN, no pretrained download, ``max_iters`` iterations
    and a validation at the end (tests/test_cityscapes_pipeline.py's small_config for any data set)."""
    cfg = Config.fromfile(cfg_path)
    cfg.model.student = small_model(cfg.model.student, crop)
    cfg.model.teacher = small_model(cfg.model.teacher, crop, student=False)
    cfg.model.teacher_checkpoint = teacher_ckpt
    pipelines = [cfg.test_pipeline]
    for key in LOADERS:
        cfg[key].update(num_workers=0, persistent_workers=False)
        for dataset in leaf_datasets(cfg[key].dataset):
            dataset.data_root = data_root
            pipelines.append(dataset.pipeline)
    for transform in (t for pipeline in pipelines for t in pipeline):
        if transform.type in ('RandomResize', 'Resize'):
            transform.scale = scale
        elif transform.type == 'RandomCrop':
            transform.crop_size = crop
        elif transform.type == 'Pad':
            transform.size = crop
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    for scheduler in cfg.param_scheduler:
        scheduler.update(begin=min(scheduler.get('begin', 0), max_iters - 1), end=min(scheduler.end, max_iters))
    cfg.default_hooks.checkpoint.update(interval=max_iters, save_best=None, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    cfg.visualizer.pop('name', None)  # MMSeg's fixed name would make later runs of this process reuse the first's
    for key in UNUSED_KEYS:  # copies and test-time augmentation: formatting them (yapf) costs seconds per run
        cfg.pop(key, None)
    cfg.dump(out_path)
    return out_path


def random_teacher(cfg_path, path):
    """A randomly initialised teacher of the config, saved as its checkpoint."""
    torch.manual_seed(0)
    cfg = Config.fromfile(cfg_path)
    teacher = MODELS.build(resolve_model_cfg(small_model(cfg.model.teacher, None, student=False)))
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return str(path)


def scalars(work_dir):
    path = next(iter(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))))
    return [json.loads(line) for line in open(path)]


IGNORE = 255


def ref_softmax(v):
    e = torch.exp(v - v.max())
    return e / e.sum()


def ref_aligned_maps(student, teacher, gt, resize_mode):
    """Student/teacher maps and labels (or None) at the loss resolution."""
    if resize_mode == 'label' and gt is not None:
        size = gt.shape[-2:]
        student, teacher = (
            F.interpolate(x, size=size, mode='bilinear', align_corners=False) for x in (student, teacher)
        )
        return student, teacher, gt
    H, W = student.shape[-2:]
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = F.interpolate(teacher, size=(H, W), mode='bilinear', align_corners=False)
    if gt is None:
        return student, teacher, None
    Hg, Wg = gt.shape[-2:]
    labels = torch.empty(gt.shape[0], H, W, dtype=torch.long)
    for n in range(gt.shape[0]):
        for i in range(H):
            for j in range(W):  # nearest: source index floor(dst * in / out)
                labels[n, i, j] = gt[n, min(i * Hg // H, Hg - 1), min(j * Wg // W, Wg - 1)]
    return student, teacher, labels


def ref_valid_rows(student, teacher, gt, resize_mode='logits'):
    s, t, labels = ref_aligned_maps(student, teacher, gt, resize_mode)
    rows = []
    N, _, H, W = s.shape
    for n in range(N):
        for i in range(H):
            for j in range(W):
                label = None if labels is None else int(labels[n, i, j])
                if label != IGNORE:
                    rows.append((s[n, :, i, j], t[n, :, i, j], label))
    return rows


def random_batch(seed, shape=(2, 6, 4, 5), teacher_hw=(8, 10), label_hw=(7, 9), dtype=torch.float64, ignore_frac=0.25):
    g = torch.Generator().manual_seed(seed)
    N, C = shape[:2]
    student = torch.randn(shape, generator=g, dtype=dtype) * 2
    teacher = torch.randn((N, C) + tuple(teacher_hw), generator=g, dtype=dtype) * 2
    gt = torch.randint(0, C, (N,) + tuple(label_hw), generator=g)
    gt[torch.rand(gt.shape, generator=g) < ignore_frac] = IGNORE
    return student, teacher, gt


def seg_batch(num=2, size=32, num_classes=3, ignored_rows=0):
    """``(inputs, data_samples)`` of random images and labels, the first ``ignored_rows`` rows of each label map
    set to the ignore index 255."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for _ in range(num):
        label = torch.randint(0, num_classes, (1, size, size))
        label[:, :ignored_rows] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(sample)
    return torch.randn(num, 3, size, size), samples
