# KD on CIFAR-100 with the DKD paper's baseline setting (mdistiller's KD defaults): T=4, CE weight 0.1,
# KD weight 0.9, no warm-up.
_base_ = ['./_base_/distill_r50_r18_cifar100.py']

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(
        logits=dict(student='head.fc', teacher='head.fc', loss=dict(type='KDLoss', temperature=4.0, loss_weight=0.9))
    ),
)
custom_hooks = [dict(type='DistillWarmupHook', warmup_epochs=0), dict(type='TeacherEvalHook')]
