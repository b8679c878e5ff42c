# Data, runtime and schedule shared by the Pascal VOC 2012 + SBD ("aug", 10582 training images, 21 classes, 255
# ignored) distillation configs: MMSeg's own bases (VOC's train.txt with SegmentationClass concatenated with the
# aug.txt of tools/dataset_converters/voc_aug.py with SegmentationClassAug; val on the 1449 val.txt images) with
# the field's VOC protocol on top. CIRKD's VOC scripts (winycg/CIRKD, scripts/train_baseline/pascal_voc/*.sh,
# scripts/train_cirkdv2/pascal_voc/*.sh, train list dataset/list/voc/train_aug.txt) train for 80k iterations,
# batch 16, crop 512x512, SGD lr 0.02, momentum 0.9, poly decay (power 0.9); they distil to MobileNetV3 students
# only, no R18 script exists, so the R18 student takes that schedule. Neither the official GDKD segmentation code
# (ZaberKo/seg-gdkd: Cityscapes, ADE20K, COCO-Stuff) nor DIST's (hunto/DIST_KD: Cityscapes) has VOC.
# Weight decay 5e-4 (MMSeg, GDKD and DIST code; CIRKD 1e-4); MMSeg's VOC pipeline.
_base_ = [
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
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

# MMSeg model zoo (deeplabv3/metafile.yaml): DeepLabV3-R101-D8 on VOC aug, 512x512, 40k iterations (77.92 mIoU;
# the 20k one has 78.70): the closer to CIRKD's teacher (77.80), so results compare with theirs.
# Without internet, download it elsewhere and pass --cfg-options model.teacher_checkpoint=/path/to/file.pth
deeplabv3_r101_teacher = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-40k_voc12aug-512x512.py'
deeplabv3_r101_checkpoint = (
    'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
    'deeplabv3_r101-d8_512x512_40k_voc12aug/'
    'deeplabv3_r101-d8_512x512_40k_voc12aug_20200613_161432-0017d784.pth'
)
# MMSeg has no VOC R18 config: the teacher's config with MMSeg's Cityscapes R18 settings
# (deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py: ResNetV1c-18, heads 512/256 in, 128/64 wide).
deeplabv3_r18_student = dict(
    cfg_path=deeplabv3_r101_teacher,
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),
)
