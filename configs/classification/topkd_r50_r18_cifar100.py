# TopKD on CIFAR-100: ResNetV1c-50 -> ResNetV1c-18, k=5 (the paper's classification default), the
# contrastive term over the whole batch; other settings are TopKDLoss's PROVISIONAL defaults.
_base_ = ['./_base_/distill_r50_r18_cifar100.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='TopKDLoss', topk=5, contrast_pixels=None, loss_weight=1.0),
        )
    )
)
