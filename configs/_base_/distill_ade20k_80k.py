# The ADE20K distillation base: the student-alone config's data, runtime, schedule and student, MMSeg's
# DeepLabV3-R101-D8 teacher (without internet: --cfg-options model.teacher_checkpoint=PATH), and the heads'
# declarations of ./distill.py; a method config sets the losses (provenance: ../README.md).
_base_ = ['../ade20k/student_deeplabv3_r18_ade20k.py', './distill.py']

model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-80k_ade20k-512x512.py',
    teacher_checkpoint=(
        'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
        'deeplabv3_r101-d8_512x512_80k_ade20k/'
        'deeplabv3_r101-d8_512x512_80k_ade20k_20200615_021256-d89c7fa4.pth'
    ),
    distill_losses={{_base_.distill_heads}},
)
custom_hooks = {{_base_.distill_hooks}}
