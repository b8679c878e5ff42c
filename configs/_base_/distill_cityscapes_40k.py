# The Cityscapes distillation base: the student-alone config's data, runtime, schedule and student, MMSeg's
# DeepLabV3-R101-D8 teacher (without internet: --cfg-options model.teacher_checkpoint=PATH), and the heads'
# declarations of ./distill.py; a method config sets the losses (provenance: ../README.md).
_base_ = ['../baselines/student_deeplabv3_r18_cityscapes.py', './distill.py']

model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-40k_cityscapes-512x1024.py',
    teacher_checkpoint=(
        'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
        'deeplabv3_r101-d8_512x1024_40k_cityscapes/'
        'deeplabv3_r101-d8_512x1024_40k_cityscapes_20200605_012241-7fd3f799.pth'
    ),
    distill_losses={{_base_.distill_heads}},
)
custom_hooks = {{_base_.distill_hooks}}
