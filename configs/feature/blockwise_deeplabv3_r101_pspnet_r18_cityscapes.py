# Block-wise logit distillation: DeepLabV3-R101-D8 teacher -> PSPNet-R18-D8 student on Cityscapes (the
# stones use the student's backbone stages, so the same settings apply).
_base_ = './blockwise_deeplabv3_r101_r18_cityscapes.py'

model = dict(student='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py')
