# The digit-crops teacher: a half-width ResNetV1c-18 (four stages, 256 channels out), on the student's schedule
# (30 epochs: at 12 it still gained 2.8 top-1 over its last quarter; docs/pretraining.md).
_base_ = ['./_base_/digit_crops.py']

model = dict(
    backbone=dict(
        stem_channels=32, base_channels=32, num_stages=4, out_indices=(3,), strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)
    ),
    head=dict(in_channels=256),
)
