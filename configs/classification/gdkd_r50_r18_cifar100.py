# GDKD on CIFAR-100 with the authors' CIFAR setting: T=4, k=5, w0=1, w1=1, w2=8 (their choice for
# ResNet50 -> MobileNetV2 and other pairs across architectures), CE weight 1, warm-up 20 epochs;
# ResNetV1c-50 -> ResNetV1c-18, 240 epochs at batch 64.
_base_ = ['./_base_/distill_r50_r18_cifar100.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='GDKDLoss', topk=5, w0=1.0, w1=1.0, w2=8.0, temperature=4.0, loss_weight=1.0),
        )
    )
)
