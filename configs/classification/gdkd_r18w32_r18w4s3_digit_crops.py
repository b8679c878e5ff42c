# GDKD on the hard digit crops with the authors' segmentation setting, k=3, w0=1, w1=1, w2=2, T=1: the
# backbone it trains starts the segmentation demo student (docs/pretraining.md).
_base_ = ['./_base_/distill_digit_crops.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, loss_weight=1.0),
        )
    )
)
