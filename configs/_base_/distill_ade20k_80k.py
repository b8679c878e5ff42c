# Data, runtime and schedule shared by the ADE20K distillation configs (150 classes; label 0 = "other" is
# ignored: reduce_zero_label maps it to 255 and 1..150 to 0..149): MMSeg's own bases with the field's ADE20K
# protocol on top. CIRKD's ADE20K scripts (winycg/CIRKD, scripts/train_baseline/ade20k/deeplabv3_resnet18.sh,
# scripts/train_cirkdv2/ade20k/deeplabv3_resnet18.sh) train the DeepLabV3-R101 -> R18 pair for 80k iterations,
# batch 16, crop 512x512, SGD lr 0.02, momentum 0.9, poly decay (power 0.9). The official GDKD segmentation code
# (ZaberKo/seg-gdkd, train_kd.py, dataset/ade20k.py) reads ADE20K with CIRKD's loader but ships no ADE20K script;
# DIST's segmentation code (hunto/DIST_KD, segmentation/) covers Cityscapes only. Weight decay stays at MMSeg's
# and the GDKD/DIST code's 5e-4 (CIRKD's default is 1e-4). The augmentation is MMSeg's ADE20K pipeline
# (resize to 2048x512 x [0.5, 2], crop, flip, photometric), which the MMSeg teacher was trained with.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)

train_dataloader = dict(batch_size=2, num_workers=4)  # 8 GPUs x 2 images
optim_wrapper = dict(optimizer=dict(lr=0.02))
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='mIoU'))
custom_hooks = [dict(type='DistillerHook', warmup_iters=0)]
auto_scale_lr = dict(enable=False, base_batch_size=16)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])

# MMSeg model zoo (deeplabv3/metafile.yaml): DeepLabV3-R101-D8, 512x512, 80k iterations (44.08 mIoU; the 160k
# one has 45.00). Of the two, the 80k teacher is the closer to CIRKD's (43.83), so results compare with theirs.
# Without internet, download it elsewhere and pass --cfg-options model.teacher_checkpoint=/path/to/file.pth
deeplabv3_r101_teacher = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-80k_ade20k-512x512.py'
deeplabv3_r101_checkpoint = (
    'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
    'deeplabv3_r101-d8_512x512_80k_ade20k/'
    'deeplabv3_r101-d8_512x512_80k_ade20k_20200615_021256-d89c7fa4.pth'
)
# MMSeg has no ADE20K R18 config: the teacher's config with MMSeg's Cityscapes R18 settings
# (deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py: ResNetV1c-18, heads 512/256 in, 128/64 wide).
deeplabv3_r18_student = dict(
    cfg_path=deeplabv3_r101_teacher,
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),
)
