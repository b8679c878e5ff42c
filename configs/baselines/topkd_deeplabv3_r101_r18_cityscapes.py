# TopKD (TSM + Top-K Decoupled Loss + pixel contrastive term); DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8
# student, same schedule and head weights as GDKD. The TSM schedule is our reading of the paper (see TopKScaling).
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

loss = dict(type='TopKDLoss', topk=5, alpha=1.0, beta=1.0, contrast_weight=0.1, tau=0.1, contrast_pixels=1024,
            teacher_scaling=dict(type='TopKScaling', scale_schedule='linear', max_scale=1.5, min_scale=1.0,
                                 gt_scale=2.0, delta_coef=0.1))
model = dict(distill_losses=[
    dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         loss=dict(loss, loss_weight=1.0)),
    dict(name='aux', student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg',
         loss=dict(loss, loss_weight=0.4)),
])
