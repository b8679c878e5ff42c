# GDKD on ImageNet, the authors' setting: ResNet-34 -> ResNetV1c-18, T=1, k=5, w0=0.5, w1=w2=1, CE weight 1,
# distillation warm-up 1 epoch, 100 epochs at batch 512. The student's backbone then starts a segmentor
# (tools/export_backbone.py).
_base_ = ['./_base_/distill_r34_r18_imagenet.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='fc',
            loss=dict(type='GDKDLoss', topk=5, w0=0.5, w1=1.0, w2=1.0, temperature=1.0, loss_weight=1.0),
        )
    )
)
