# GDKD on scikit-learn's digits (the tests' small task) with the authors' segmentation setting, k=3, w0=1,
# w1=1, w2=2, T=1 (CIFAR-100's T=4, w2=8 over-weights distillation on this 4-epoch schedule; docs/methods.md).
_base_ = ['./_base_/distill_digits.py']

model = dict(
    distill_losses=dict(
        logits=dict(
            student='head.fc',
            teacher='head.fc',
            loss=dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, loss_weight=1.0),
        )
    )
)
