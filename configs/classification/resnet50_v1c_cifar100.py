# The CIFAR-100 teacher: ResNetV1c-50 (same stage strides as the student), the CIFAR-100 schedule.
_base_ = ['./_base_/cifar100.py']

model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
