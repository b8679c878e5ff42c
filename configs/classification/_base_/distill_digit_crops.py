# Digit-crops distillation: the half-width ResNetV1c-18 teacher (../resnet18w32_v1c_digit_crops.py) -> the
# segmentation demo student's backbone. Children set the losses; pass the teacher with
# --cfg-options model.teacher_checkpoint=work_dirs/cls_crops/teacher_seed0/epoch_N.pth
_base_ = ['./digit_crops.py']

model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/../resnet18w32_v1c_digit_crops.py',
    teacher_checkpoint=None,
    distill_losses=dict(),
)
custom_hooks = [dict(type='DistillWarmupHook', warmup_epochs=1), dict(type='TeacherEvalHook')]
