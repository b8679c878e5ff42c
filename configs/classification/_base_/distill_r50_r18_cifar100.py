# CIFAR-100 distillation: ResNetV1c-50 teacher (train it with ../resnet50_v1c_cifar100.py) ->
# ResNetV1c-18 student. Children set the losses; the distillation weight warms up over 20 epochs.
_base_ = ['./cifar100.py']

model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/../resnet50_v1c_cifar100.py',
    teacher_checkpoint=None,  # --cfg-options model.teacher_checkpoint=work_dirs/resnet50_v1c_cifar100/best_*.pth
    distill_losses=dict(),
)
custom_hooks = [dict(type='DistillWarmupHook', warmup_epochs=20), dict(type='TeacherEvalHook')]
