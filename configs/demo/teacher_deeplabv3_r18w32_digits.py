# Teacher of the embedded demo: DeepLabV3 (ASPP) on a half-width ResNetV1c-18, trained on digit scenes.
# tools/demo.py trains it once and reuses the checkpoint while this config and the data stay the same.
_base_ = ['./_base_/deeplabv3_teacher.py', './_base_/digit_scenes.py', './_base_/runtime.py']

# 1200 iterations at lr 0.01 (docs/demo.md: how the schedule was set).
max_iters = 1200
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
