# The Pascal VOC aug distillation base: the student-alone config's data, runtime, schedule and student, MMSeg's
# DeepLabV3-R101-D8 teacher (without internet: --cfg-options model.teacher_checkpoint=PATH), and the heads'
# declarations of ./distill.py; a method config sets the losses (provenance: ../README.md).
_base_ = ['../voc12aug/student_deeplabv3_r18_voc12aug.py', './distill.py']

model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-40k_voc12aug-512x512.py',
    teacher_checkpoint=(
        'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
        'deeplabv3_r101-d8_512x512_40k_voc12aug/'
        'deeplabv3_r101-d8_512x512_40k_voc12aug_20200613_161432-0017d784.pth'
    ),
    distill_losses={{_base_.distill_heads}},
)
custom_hooks = {{_base_.distill_hooks}}
