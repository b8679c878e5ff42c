# GDKD with the authors' segmentation setting (k=3, w0=1, w1=1, w2=2, T=1): DeepLabV3 -> FCN on digit scenes.
_base_ = './_base_/distill.py'

demo_method = dict(key='GDKD', label='GDKD (k=3, w=1/1/2, T=1)', order=3, default=True)
model = dict(
    distill_losses=dict(
        decode=dict(loss=dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, loss_weight=1.0))
    )
)
