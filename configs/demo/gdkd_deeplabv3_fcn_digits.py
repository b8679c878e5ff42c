# GDKD with the authors' segmentation setting (k=3, w0=1, w1=1, w2=2, T=1): DeepLabV3 -> FCN on digit scenes.
_base_ = './_base_/distill.py'

# One seed in the demo: the live teacher's curve shows on the same axes what the cache saves.
demo_method = dict(key='GDKD-live', label='GDKD, live teacher', order=5, default=True, seeds=1)
model = dict(
    distill_losses=dict(
        decode=dict(loss=dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, loss_weight=1.0))
    )
)
