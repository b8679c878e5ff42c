# GDKD + DIST's intra-class term (beta=0, gamma=1, tau=1) on each head's logits, decode 1, auxiliary 0.4: the
# official GDKD code's GDKDDIST (../README.md). DeepLabV3-R101-D8 -> DeepLabV3-R18-D8 on Cityscapes.
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

dist_intra = dict(type='DISTLoss', beta=0.0, gamma=1.0, tau=1.0)
model = dict(
    distill_losses=dict(
        decode_dist=dict(
            student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(dist_intra, loss_weight=1.0)
        ),
        aux_dist=dict(
            student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg', loss=dict(dist_intra, loss_weight=0.4)
        ),
    )
)
