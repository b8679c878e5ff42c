# GDKD + TSM with the PSPNet-R18-D8 student: the DeepLabV3-R18 student's config, student swapped.
_base_ = './gdkd_tsm_deeplabv3_r101_r18_cityscapes.py'

model = dict(student='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py')
