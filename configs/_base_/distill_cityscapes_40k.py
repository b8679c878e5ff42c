# Data, runtime and schedule shared by the Cityscapes distillation configs: MMSeg's own bases, with the
# field's protocol on top (40k iterations, batch 16 = 8 GPUs x 2 images, SGD lr 0.02, momentum 0.9,
# weight decay 5e-4, poly decay, crop 512x1024). The models come from MMSeg's configs by path
# (model.student / model.teacher), as in MMRazor.
# Fewer GPUs: keep 2 images per GPU and scale the lr linearly (4 GPUs: lr 0.01), or let MMEngine do it
# with --cfg-options auto_scale_lr.enable=True.
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
]
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)

train_dataloader = dict(batch_size=2, num_workers=4)
optim_wrapper = dict(optimizer=dict(lr=0.02))
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='mIoU'))
custom_hooks = [dict(type='DistillerHook', warmup_iters=0)]
auto_scale_lr = dict(enable=False, base_batch_size=16)
# Loss terms, mIoU and the partition hook's pictures go to TensorBoard too: tensorboard --logdir work_dirs
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])

# MMSeg model zoo: DeepLabV3-R101-D8, 512x1024, 40k iterations (77.12 mIoU). Without internet, download it
# elsewhere and pass --cfg-options model.teacher_checkpoint=/path/to/file.pth
deeplabv3_r101_teacher = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-40k_cityscapes-512x1024.py'
deeplabv3_r101_checkpoint = (
    'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
    'deeplabv3_r101-d8_512x1024_40k_cityscapes/'
    'deeplabv3_r101-d8_512x1024_40k_cityscapes_20200605_012241-7fd3f799.pth'
)
