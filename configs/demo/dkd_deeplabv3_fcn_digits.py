# DKD with the GDKD authors' segmentation setting (alpha=1, beta=2, T=1): DeepLabV3 -> FCN on digit scenes.
_base_ = './_base_/distill.py'

demo_method = dict(key='DKD-live', label='DKD (a=1, b=2, T=1), live teacher', order=13, default=False)
model = dict(
    distill_losses=dict(decode=dict(loss=dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0, loss_weight=1.0)))
)
