# GDKD (k=3, w0=1, w1=1, w2=2, T=1; decode head 1, auxiliary head 0.4): DeepLabV3-R101-D8 teacher ->
# DeepLabV3-R18-D8 student on Pascal VOC aug.
_base_ = ['../_base_/distill_voc12aug_80k.py', '../_base_/gdkd.py']

model = dict(distill_losses=dict(decode=dict(loss={{_base_.gdkd}}), aux=dict(loss={{_base_.gdkd}})))
