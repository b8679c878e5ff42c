# Baseline: DKD (alpha=1, beta=2, T=1), DeepLabV3-R101-D8 -> DeepLabV3-R18-D8 on Cityscapes.
_base_ = '../_base_/distill_cityscapes_40k.py'

dkd = dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)
model = dict(distill_losses=dict(decode=dict(loss=dkd), aux=dict(loss=dkd)))
