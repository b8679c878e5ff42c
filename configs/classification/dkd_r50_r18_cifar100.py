# DKD on CIFAR-100 as released (mdistiller's defaults, e.g. configs/cifar100/dkd/res50_mv2.yaml): T=4,
# alpha=1, beta=8, CE weight 1, warm-up 20 epochs.
_base_ = ['./_base_/distill_r50_r18_cifar100.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='DKDLoss', alpha=1.0, beta=8.0, temperature=4.0, loss_weight=1.0),
        )
    )
)
