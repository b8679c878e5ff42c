# GDKD with the authors' segmentation setting (k=3, w0=1, w1=1, w2=2, T=1): DeepLabV3 -> FCN on digit scenes.
# It is also the best of the settings swept on this task (k=1/2/3/5, w2=2/4/8; README, "Sensitivity to the
# loss settings").
_base_ = './_base_/distill.py'

model = dict(distill_losses=[
    dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         loss=dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, loss_weight=1.0))])
