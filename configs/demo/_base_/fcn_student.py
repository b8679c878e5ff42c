# Student: an FCN head on the first three stages of a ResNetV1c-18 at 4/64 of its width (stages of 4, 8 and 16
# channels), output stride 8: small enough to stay 8+ mIoU below the teacher (14.5 on the benchmark; docs/demo.md:
# how the student was chosen).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size_divisor=8,
    ),
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        stem_channels=4,
        base_channels=4,
        num_stages=3,
        out_indices=(2,),
        strides=(1, 2, 1),
        dilations=(1, 1, 2),
        contract_dilation=True,
        norm_cfg=norm_cfg,
    ),
    decode_head=dict(
        type='FCNHead',
        in_channels=16,
        in_index=0,
        channels=8,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=11,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)
