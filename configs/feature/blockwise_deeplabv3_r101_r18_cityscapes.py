# Block-wise logit distillation (Yu et al., arXiv 2411.01547): DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8
# student on Cityscapes, same schedule as GDKD. Stepping stones 1-3 run the student's stages 1..i, a 1x1
# conv + BN connector (R18 64/128/256 -> R101 256/512/1024 channels) and the teacher's stages i+1..4 and
# ASPP head; weights 1/8, 1/4, 1/2. Each stone costs a partial R101 forward and backward per iteration:
# drop stones (e.g. stones=[3]) to save time and memory. alpha/beta/gamma = 1 and T = 1 are this project's
# segmentation setting (the paper reports classification).
_base_ = '../_base_/distill_cityscapes_40k.py'

model = dict(
    components=dict(
        stepping_stones=dict(type='SteppingStones', stones=[1, 2, 3], norm_cfg=dict(type='SyncBN', requires_grad=True))
    ),
    distill_losses=dict(
        _delete_=True,
        blockwise=dict(
            student='decode_head.conv_seg',
            teacher='decode_head.conv_seg',
            extra_inputs=dict(stones='stepping_stones'),
            loss=dict(type='BlockwiseKDLoss', alpha=1.0, beta=1.0, gamma=1.0, temperature=1.0, loss_weight=1.0),
        ),
    ),
)
