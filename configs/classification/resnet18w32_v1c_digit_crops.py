# The digit-crops teacher: a half-width ResNetV1c-18 (four stages, 256 channels out), on a shorter schedule
# than the student's (it learns faster per epoch and costs 5x as much; docs/pretraining.md).
_base_ = ['./_base_/digit_crops.py']

model = dict(
    backbone=dict(
        stem_channels=32, base_channels=32, num_stages=4, out_indices=(3,), strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)
    ),
    head=dict(in_channels=256),
)
max_epochs = 12
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, eta_min=1e-4)]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
