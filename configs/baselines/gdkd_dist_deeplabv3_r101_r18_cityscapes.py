# GDKD + DIST's intra-class term: DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student on Cityscapes, the GDKD
# config with a second loss on each head's logits. The official GDKD segmentation code (ZaberKo/seg-gdkd,
# losses/distiller/gdkd.py: GDKDDIST, --kd-method gdkd-dist of train_kd.py, itself forked from DIST's
# segmentation code) adds dist_intra_weight * intra_class_relation(softmax(z_s / T), softmax(z_t / T)) to GDKD,
# with dist_intra_weight = 1.0 by default (its repository ships no gdkd-dist script that sets another), on the
# same T as GDKD, and applies the whole criterion to the auxiliary head with weight 0.4 as well. Here: DISTLoss
# with beta=0 (no inter-class term), gamma=1, tau=T=1 (with T=1, tau^2 changes nothing), decode 1, auxiliary 0.4,
# over the batch's labelled pixels (the official code leaves ignored pixels out only when over 1000 are ignored).
# gamma=1 is also DIST's published segmentation default (hunto/DIST_KD, segmentation/losses/dist_kd.py).
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
