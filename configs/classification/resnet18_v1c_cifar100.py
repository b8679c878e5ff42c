# ResNetV1c-18 alone on CIFAR-100, the distillation configs' schedule (their baseline).
_base_ = ['./_base_/cifar100.py']
