# GDKD + DIST's intra-class term (beta=0, gamma=1, tau=1) on the decode logits, from cached teacher logits:
# the official GDKD code's GDKDDIST, as configs/baselines/gdkd_dist_deeplabv3_r101_r18_cityscapes.py does it.
_base_ = './gdkd_cached_deeplabv3_fcn_digits.py'

demo_method = dict(key='GDKD+DIST', label='GDKD + DIST (intra)', order=4, default=True)
model = dict(
    distill_losses=dict(
        decode_dist=dict(
            student='decode_head.conv_seg',
            teacher='decode_head.conv_seg',
            loss=dict(type='DISTLoss', beta=0.0, gamma=1.0, tau=1.0, loss_weight=1.0),
        )
    )
)
