# The digits teacher: a half-width ResNetV1c-18 trained on scikit-learn's digits.
_base_ = ['./_base_/digits.py']

model = dict(backbone=dict(stem_channels=32, base_channels=32), head=dict(in_channels=256))
