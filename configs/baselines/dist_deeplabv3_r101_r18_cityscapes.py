# Baseline: DIST (beta=1, gamma=1, tau=1), DeepLabV3-R101-D8 -> DeepLabV3-R18-D8 on Cityscapes.
_base_ = '../_base_/distill_cityscapes_40k.py'

dist = dict(type='DISTLoss', beta=1.0, gamma=1.0, tau=1.0)
model = dict(distill_losses=dict(decode=dict(loss=dist), aux=dict(loss=dist)))
