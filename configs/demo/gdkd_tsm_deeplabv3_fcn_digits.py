# GDKD (k=3, w0=1, w1=1, w2=2, T=1) on teacher logits passed through TopKD's Top-K Scaling Module:
# DeepLabV3 -> FCN on digit scenes. TSM scales the same top-3 that GDKD's partition uses: k=3 gave 55.14 mIoU
# against 54.11 with k=5 (better on every seed), delta_coef=0 52.09 (README, "The embedded demo").
_base_ = './_base_/distill.py'

model = dict(distill_losses=[
    dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         loss=dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0, loss_weight=1.0,
                   teacher_scaling=dict(type='TopKScaling', k=3, scale_schedule='linear', max_scale=1.5,
                                        min_scale=1.0, gt_scale=2.0, delta_coef=0.1)))])
