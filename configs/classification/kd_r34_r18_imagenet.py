# KD on ImageNet with the DKD paper's baseline setting (mdistiller configs/imagenet/r34_r18/kd.yaml):
# T=1, CE weight 0.5, KD weight 0.5, no warm-up. Published top-1: 71.03.
_base_ = ['./_base_/distill_r34_r18_imagenet.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.5))),
    distill_losses=dict(
        logits=dict(student='head.fc', teacher='fc', loss=dict(type='KDLoss', temperature=1.0, loss_weight=0.5))
    ),
)
custom_hooks = [dict(type='DistillWarmupHook', warmup_epochs=0), dict(type='TeacherEvalHook')]
