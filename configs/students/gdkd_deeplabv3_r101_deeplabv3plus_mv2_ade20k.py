# GDKD: DeepLabV3-R101-D8 teacher -> DeepLabV3+ on MobileNetV2 (MMSeg's mobilenet_v2 ADE20K config, backbone from
# mmcls://mobilenet_v2, 150 classes as the teacher) on ADE20K, GDKD's setting on the ADE20K schedule (SGD, as
# MMSeg trains this student). Strides: the student's decode logits are at 1/4 (DeepLabV3+ fuses MobileNetV2's
# 1/4 features), the teacher's at 1/8: the loss (resize_mode='logits') upsamples the teacher's logits bilinearly
# to the student's size (128x128 for a 512x512 crop), labels by nearest at that size. The auxiliary heads are
# both at 1/8 and are compared as they are.
_base_ = '../ade20k/gdkd_deeplabv3_r101_r18_ade20k.py'

model = dict(student='mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb4-160k_ade20k-512x512.py')
