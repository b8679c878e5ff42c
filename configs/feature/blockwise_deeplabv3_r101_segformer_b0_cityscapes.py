# Block-wise logit distillation across architectures: DeepLabV3-R101-D8 teacher -> SegFormer MiT-B0 student on
# Cityscapes, with the SegFormer GDKD config's data, optimiser and schedule. Stepping stone i runs the student's
# MiT stages 1..i (the backbone's outputs 'backbone:0' .. 'backbone:2', found from its out_indices, as MiT's
# stages are not called as modules; their 32/64/160 channels read by one small forward at construction), a 1x1
# conv + BN connector to R101's 256/512/1024 channels, resized bilinearly to the teacher's stage size (stone 3:
# MiT's 1/16 up to R101's dilated 1/8), then the teacher's stages i+1..4 and ASPP head; weights 1/8, 1/4, 1/2.
# The stones' logits are at the teacher's 1/8; the student's own 1/4 logits meet the teacher's and the stones'
# mean upsampled to 1/4 in the KD and cross terms. alpha/beta/gamma = 1 and T = 1, as the R18 config.
_base_ = '../students/gdkd_deeplabv3_r101_segformer_b0_cityscapes.py'

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
