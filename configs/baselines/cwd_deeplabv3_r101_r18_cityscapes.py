# Baseline: CWD, MMRazor's Cityscapes setting: tau=1, weight 5, decode head only; DeepLabV3-R101-D8 teacher ->
# DeepLabV3-R18-D8 student, same schedule as GDKD.
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

model = dict(
    distill_losses=dict(decode=dict(loss=dict(_delete_=True, type='CWDLoss', tau=1.0, loss_weight=5.0)), aux=None)
)
