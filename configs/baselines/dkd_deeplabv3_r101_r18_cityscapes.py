# Baseline: DKD, the GDKD authors' segmentation setting alpha=1, beta=2, T=1; DeepLabV3-R101-D8 teacher ->
# DeepLabV3-R18-D8 student, same schedule and head weights (decode 1, auxiliary 0.4) as GDKD.
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

dkd = dict(_delete_=True, type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)
model = dict(
    distill_losses=dict(decode=dict(loss=dict(dkd, loss_weight=1.0)), aux=dict(loss=dict(dkd, loss_weight=0.4)))
)
