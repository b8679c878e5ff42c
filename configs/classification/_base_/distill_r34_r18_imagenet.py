# ImageNet distillation: torchvision's ResNet-34 (73.31 top-1) -> ResNetV1c-18. Children set the losses
# (and the student's cross-entropy weight); the distillation weight warms up over the first epoch.
_base_ = ['./imagenet.py']

model = dict(
    _delete_=True,
    type='ClsDistiller',
    student={{_base_.model}},
    teacher=dict(type='TorchvisionClassifier', name='resnet34', num_classes=1000),
    # torchvision's weights; without internet, download elsewhere and pass
    # --cfg-options model.teacher_checkpoint=/path/to/resnet34-b627a593.pth
    teacher_checkpoint='https://download.pytorch.org/models/resnet34-b627a593.pth',
    distill_losses=dict(),
)
custom_hooks = [dict(type='DistillWarmupHook', warmup_epochs=1), dict(type='TeacherEvalHook')]
