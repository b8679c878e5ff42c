# DKD on ImageNet as released (mdistiller configs/imagenet/r34_r18/dkd.yaml): T=1, beta=0.5, alpha left at
# mdistiller's default 1.0, CE weight 1, warm-up 1 epoch. Published top-1: 71.70.
_base_ = ['./_base_/distill_r34_r18_imagenet.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='fc',
            loss=dict(type='DKDLoss', alpha=1.0, beta=0.5, temperature=1.0, loss_weight=1.0),
        )
    )
)
