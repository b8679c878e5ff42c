# Baseline: the DeepLabV3-R18-D8 student alone on Pascal VOC aug, with the distillation configs' schedule
# (80k iterations, batch 16 = 8 GPUs x 2 images, lr 0.02; ../_base_/distill_voc12aug_80k.py) instead of the
# 40k of the MMSeg teacher config it starts from. MMSeg has no R18 config for this data set: the R101
# teacher's config with MMSeg's Cityscapes R18 settings (ResNetV1c-18, heads 512/256 in, 128/64 wide).
_base_ = ['mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-40k_voc12aug-512x512.py']
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)

model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),
)
train_dataloader = dict(batch_size=2, num_workers=4)
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=80000, by_epoch=False)]
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000, max_keep_ckpts=2, save_best='mIoU'))
auto_scale_lr = dict(enable=False, base_batch_size=16)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
