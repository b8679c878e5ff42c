# ResNetV1c-18 alone on ImageNet, the distillation configs' schedule (the baseline they are compared with).
_base_ = ['./_base_/imagenet.py']
