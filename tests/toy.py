"""Small generated data and models shared by the tests (CPU, seconds)."""

import os.path as osp

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmseg.registry import MODELS
from PIL import Image


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
