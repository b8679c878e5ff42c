# Baseline: plain KD (T=1), DeepLabV3-R101-D8 -> DeepLabV3-R18-D8 on Cityscapes.
_base_ = '../_base_/distill_cityscapes_40k.py'

kd = dict(type='KDLoss', temperature=1.0)
model = dict(distill_losses=dict(decode=dict(loss=kd), aux=dict(loss=kd)))
