# TopKD on scikit-learn's digits: k=3 (10 classes leave no Non group at the classification default k=5),
# the contrastive term over the whole batch; other settings are TopKDLoss's PROVISIONAL defaults.
_base_ = ['./_base_/distill_digits.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='TopKDLoss', topk=3, contrast_pixels=None, loss_weight=1.0),
        )
    )
)
