# GDKD: DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student on ADE20K, with the Cityscapes setting of the GDKD
# authors (k=3, w0=1, w1=1, w2=2, T=1 on the raw head logits at 1/8 resolution; decode head 1, auxiliary head
# 0.4) on the data set's protocol and MMSeg teacher (../_base_/distill_ade20k_80k.py).
_base_ = ['../_base_/distill_ade20k_80k.py', '../_base_/gdkd_heads.py']

model = dict(
    student={{_base_.deeplabv3_r18_student}},
    teacher={{_base_.deeplabv3_r101_teacher}},
    teacher_checkpoint={{_base_.deeplabv3_r101_checkpoint}},
)
