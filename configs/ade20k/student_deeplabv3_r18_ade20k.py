# Baseline: the DeepLabV3-R18-D8 student alone on ADE20K, with the distillation configs' schedule
# (80k iterations, batch 16 = 8 GPUs x 2 images, lr 0.02; ../_base_/distill_ade20k_80k.py). MMSeg has no
# R18 config for this data set: the R101 teacher's config with MMSeg's Cityscapes R18 settings
# (ResNetV1c-18, heads 512/256 in, 128/64 wide).
_base_ = ['mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-80k_ade20k-512x512.py']
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)

model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),
)
train_dataloader = dict(batch_size=2, num_workers=4)
optim_wrapper = dict(optimizer=dict(lr=0.02))
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='mIoU'))
auto_scale_lr = dict(enable=False, base_batch_size=16)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
