# Baseline: plain KD, T=1; DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student, same schedule as GDKD.
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

loss = dict(type='KDLoss', temperature=1.0)
model = dict(distill_losses=[
    dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         loss=dict(loss, loss_weight=1.0)),
    dict(name='aux', student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg',
         loss=dict(loss, loss_weight=0.4)),
])
