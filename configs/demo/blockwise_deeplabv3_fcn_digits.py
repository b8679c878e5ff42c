# Block-wise logit distillation (Yu et al., arXiv 2411.01547): DeepLabV3 -> FCN on digit scenes. Stepping
# stones 1-3 run the student's stages 1..i, a 1x1 conv + BN connector (16/32/64 -> 32/64/128 channels), the
# teacher's stages i+1..4 and ASPP head (weights 1/8, 1/4, 1/2); alpha = beta = gamma = 1, T = 1.
_base_ = './_base_/distill.py'

demo_method = dict(key='BlockKD', label='block-wise KD (stones 1-3)', order=10, default=False)
model = dict(
    components=dict(stepping_stones=dict(type='SteppingStones', stones=[1, 2, 3])),
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
