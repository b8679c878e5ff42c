# Data, runtime and schedule shared by the COCO-Stuff-164k distillation configs (171 classes, MMSeg's
# *_labelTrainIds.png maps from tools/dataset_converters/coco_stuff164k.py; 255 ignored): MMSeg's own bases with
# the field's COCO-Stuff-164k protocol on top. CIRKD's scripts (winycg/CIRKD,
# scripts/train_baseline/coco_stuff_164k/deeplabv3_resnet18.sh, scripts/train_cirkdv2/coco_stuff_164k/
# deeplabv3_resnet18.sh) train the DeepLabV3-R101 -> R18 pair for 80k iterations, batch 16, crop 512x512,
# SGD lr 0.02, momentum 0.9, poly decay (power 0.9). The official GDKD segmentation code (ZaberKo/seg-gdkd,
# dataset/coco_stuff_164k.py) reads COCO-Stuff-164k with CIRKD's loader but ships no script for it; DIST's
# (hunto/DIST_KD, segmentation/) covers Cityscapes only. CIRKD counts 182 classes (the raw COCO ids, 11 of them
# never used); MMSeg, whose teacher we use, 171. Weight decay 5e-4 (MMSeg, GDKD and DIST code; CIRKD 1e-4);
# MMSeg's COCO-Stuff pipeline (resize to 2048x512 x [0.5, 2], crop, flip, photometric).
_base_ = [
    'mmseg::_base_/datasets/coco-stuff164k.py',
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

# MMSeg model zoo (deeplabv3/metafile.yaml): DeepLabV3-R101-D8, 512x512, 80k iterations (40.87 mIoU; 160k: 41.82,
# 320k: 42.61): the schedule of the students and the closest to CIRKD's teacher (38.48).
# Without internet, download it elsewhere and pass --cfg-options model.teacher_checkpoint=/path/to/file.pth
deeplabv3_r101_teacher = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-80k_coco-stuff164k-512x512.py'
deeplabv3_r101_checkpoint = (
    'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
    'deeplabv3_r101-d8_512x512_4x4_80k_coco-stuff164k/'
    'deeplabv3_r101-d8_512x512_4x4_80k_coco-stuff164k_20210709_201252-13600dc2.pth'
)
# MMSeg has no COCO-Stuff R18 config: the teacher's config with MMSeg's Cityscapes R18 settings
# (deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py: ResNetV1c-18, heads 512/256 in, 128/64 wide).
deeplabv3_r18_student = dict(
    cfg_path=deeplabv3_r101_teacher,
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),
)
