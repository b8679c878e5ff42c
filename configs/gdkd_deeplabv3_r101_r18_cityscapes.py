# GDKD: DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student on Cityscapes, the GDKD authors' setting
# (k=3, w0=1, w1=1, w2=2, T=1 on the raw head logits at 1/8 resolution; decode head 1, auxiliary head 0.4).
# The student is MMSeg's own R18 config (backbone from open-mmlab://resnet18_v1c).
_base_ = ['./_base_/distill_cityscapes_40k.py', './_base_/gdkd_heads.py']

model = dict(
    student='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    teacher={{_base_.deeplabv3_r101_teacher}},
    teacher_checkpoint={{_base_.deeplabv3_r101_checkpoint}},
)
