# GDKD + TSM: GDKD's Cityscapes setting (k=3, w0=1, w1=1, w2=2, T=1) on teacher logits passed through TopKD's
# Top-K Scaling Module; DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student. TSM scales GDKD's top-3 (k=3 was
# better than k=5 on the embedded demo); the rest of its schedule is our reading of the paper (see TopKScaling).
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

tsm = dict(type='TopKScaling', k=3, scale_schedule='linear', max_scale=1.5, min_scale=1.0, gt_scale=2.0,
           delta_coef=0.1)
loss = dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, teacher_scaling=tsm)
model = dict(distill_losses=[
    dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         loss=dict(loss, loss_weight=1.0)),
    dict(name='aux', student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg',
         loss=dict(loss, loss_weight=0.4)),
])
