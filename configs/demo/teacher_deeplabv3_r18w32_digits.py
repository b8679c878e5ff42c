# Teacher of the embedded demo: DeepLabV3 (ASPP) on a half-width ResNetV1c-18, trained on digit scenes with
# random resize and crop for 18,000 iterations (docs/demo.md: how the schedule was set, and how near its plateau
# it ends; no flip: a mirrored 2 is no 2). tools/demo.py trains it once and reuses the checkpoint while
# this config and the data stay the same.
_base_ = ['./_base_/deeplabv3_teacher.py', './_base_/digit_scenes.py', './_base_/runtime.py']

max_iters = 18000
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(64, 64), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
