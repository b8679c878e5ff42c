# TopKD on ImageNet: ResNet-34 -> ResNetV1c-18, k=5 (the paper's classification default; 3-10 work, 50
# collapses), the contrastive term over the whole batch. The other settings are TopKDLoss's PROVISIONAL
# defaults (the paper's appendix with its schedules was not available).
_base_ = ['./_base_/distill_r34_r18_imagenet.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc', teacher='fc', loss=dict(type='TopKDLoss', topk=5, contrast_pixels=None, loss_weight=1.0)
        )
    )
)
