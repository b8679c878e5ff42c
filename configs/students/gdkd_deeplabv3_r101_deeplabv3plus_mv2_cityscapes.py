# GDKD: DeepLabV3-R101-D8 teacher -> DeepLabV3+ on MobileNetV2 (MMSeg's mobilenet_v2 config, backbone from
# mmcls://mobilenet_v2, 19 classes as the teacher) on Cityscapes, GDKD's Cityscapes setting and schedule (SGD,
# as MMSeg trains this student). Strides: the DeepLabV3+ decoder fuses MobileNetV2's 1/4 features, so the
# student's decode logits are at 1/4 and the teacher's at 1/8: the loss (resize_mode='logits') upsamples the
# teacher's logits bilinearly to the student's size (128x256 for a 512x1024 crop), labels by nearest at that
# size. The auxiliary heads are both at 1/8 (the student's FCN on MobileNetV2's dilated 96-channel output, the
# teacher's on R101 stage 3) and are compared as they are.
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

model = dict(student='mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py')
