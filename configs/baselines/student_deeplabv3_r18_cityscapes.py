# Baseline: the DeepLabV3-R18-D8 student alone, with the distillation configs' schedule (40k it, batch 16).
_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py', '../_base_/distill_cityscapes_40k.py']

custom_hooks = []
