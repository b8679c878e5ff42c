# Teacher: DeepLabV3 (ASPP head) on a ResNetV1c-18 of half width, output stride 8 (8x8 logits for 64x64).
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=8),
    backbone=dict(type='ResNetV1c', depth=18, stem_channels=32, base_channels=32, num_stages=4,
                  out_indices=(3,), strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True,
                  norm_cfg=norm_cfg),
    decode_head=dict(type='ASPPHead', in_channels=256, in_index=0, channels=64, dilations=(1, 2, 4, 6),
                     dropout_ratio=0.1, num_classes=11, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
