# Baseline: the PSPNet-R18-D8 student alone (MMSeg's own R18 config) on the Cityscapes protocol of the
# distillation configs.
_base_ = './student_deeplabv3_r18_cityscapes.py'

model = dict(_delete_=True, cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py')
