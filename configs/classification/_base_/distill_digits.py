# Digits distillation: a half-width ResNetV1c-18 teacher (../resnet18w32_v1c_digits.py) -> the
# quarter-width student. Children set the losses; pass the teacher with
# --cfg-options model.teacher_checkpoint=work_dirs/resnet18w32_v1c_digits/epoch_N.pth
_base_ = ['./digits.py']

model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/../resnet18w32_v1c_digits.py',
    teacher_checkpoint=None,
    distill_losses=dict(),
)
custom_hooks = [dict(type='DistillWarmupHook', warmup_epochs=1), dict(type='TeacherEvalHook')]
