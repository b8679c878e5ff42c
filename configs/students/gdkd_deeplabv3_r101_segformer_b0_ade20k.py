# GDKD: DeepLabV3-R101-D8 teacher -> SegFormer MiT-B0 student (MMSeg's ADE20K config, 150 classes as the
# teacher) on ADE20K, GDKD's setting on the decode head; SegFormer has no auxiliary head, so aux=None.
# Strides: the student's logits are at 1/4 (SegformerHead works at stage 1's size), the teacher's at 1/8: the
# loss (resize_mode='logits') upsamples the teacher's logits bilinearly to the student's size (128x128 for a
# 512x512 crop), labels by nearest at that size; the student is not resized.
# Data and iterations: the ADE20K distillation base (512x512, batch 16, 80k); the optimiser is SegFormer's own
# from MMSeg's config (AdamW lr 6e-5, weight decay 0.01, head lr x10, no decay on norms and position blocks,
# 1500 warm-up iterations, then poly with power 1): SGD at lr 0.02 does not train the transformer.
_base_ = '../ade20k/gdkd_deeplabv3_r101_r18_ade20k.py'

model = dict(student='mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py', distill_losses=dict(aux=None))
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
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000, by_epoch=False),
]
