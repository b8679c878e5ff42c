# Baseline: CWD (tau=1, loss weight 5 on the decode head's logits only), DeepLabV3-R101-D8 -> DeepLabV3-R18-D8 on
# Cityscapes.
_base_ = '../_base_/distill_cityscapes_40k.py'

model = dict(distill_losses=dict(decode=dict(loss=dict(type='CWDLoss', tau=1.0, loss_weight=5.0)), aux=None))
