# CIFAR-100 (the cifar-100-python files under data_root; train 50k, evaluated on test 10k) and the
# distillation protocol of DKD/GDKD: 240 epochs, batch 64, SGD lr 0.05, momentum 0.9, weight decay 5e-4,
# lr x0.1 at epochs 150/180/210; random crop (padding 4) and horizontal flip.
# The model is the student alone: ResNetV1c-18 (MMSeg's backbone) with stage strides (1, 1, 2, 2) so a
# 32x32 image still ends in a 2x2 map; strides hold no weights, so the backbone still starts a segmentor.
_base_ = ['./runtime.py']

data_root = 'data/cifar100'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CIFAR100', data_root=data_root, split='train', download=False, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CIFAR100', data_root=data_root, split='test', download=False, pipeline=test_pipeline, test_mode=True
    ),
)
test_dataloader = val_dataloader

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=64)
default_hooks = dict(logger=dict(interval=100))

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor', mean=[129.304, 124.070, 112.434], std=[68.170, 65.392, 70.418], to_rgb=True
    ),
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        out_indices=(3,),
        strides=(1, 1, 2, 2),
        norm_cfg=dict(type='BN', requires_grad=True),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=100, in_channels=512, loss=dict(type='CrossEntropyLoss', loss_weight=1.0)
    ),
)
