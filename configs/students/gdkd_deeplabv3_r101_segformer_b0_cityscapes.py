# GDKD: DeepLabV3-R101-D8 teacher -> SegFormer MiT-B0 student (MMSeg's config, 19 classes as the teacher) on
# Cityscapes, GDKD's Cityscapes setting on the decode head; SegFormer has no auxiliary head, so aux=None.
# Strides: SegformerHead fuses the four MiT stages at stage 1's size, so the student's logits are at 1/4 and the
# teacher's at 1/8. The loss (resize_mode='logits') upsamples the teacher's logits bilinearly to the student's
# size (128x256 for a 512x1024 crop) and takes the labels by nearest at that size; the student is not resized.
# Data and iterations are the Cityscapes distillation base's (512x1024 crops, the teacher's, not SegFormer's
# 1024x1024; batch 16; 40k); the optimiser is SegFormer's own from MMSeg's config (AdamW lr 6e-5, weight decay
# 0.01, head lr x10, no decay on norms and position blocks, 1500 warm-up iterations, then poly with power 1):
# SGD at lr 0.02 does not train the transformer. SegFormer's slide test (1024x1024 windows) stays.
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

model = dict(
    student=dict(
        _delete_=True,
        cfg_path='mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
        data_preprocessor=dict(size=(512, 1024)),
    ),
    distill_losses=dict(aux=None),
)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys=dict(pos_block=dict(decay_mult=0.0), norm=dict(decay_mult=0.0), head=dict(lr_mult=10.0))
    ),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=40000, by_epoch=False),
]
