# ImageNet-1k (mmpretrain's ImageNet: data/imagenet/{train,val}/<wnid>/*.JPEG, or meta/{train,val}.txt) and
# the distillation protocol of DKD/GDKD: 100 epochs, batch 512 (8 GPUs x 64), SGD lr 0.2, momentum 0.9,
# weight decay 1e-4, lr x0.1 at epochs 30/60/90; torchvision's reference augmentation.
# The model is the student alone: a ResNetV1c-18 (MMSeg's backbone, so its weights start a segmentor).
_base_ = ['./runtime.py']

data_root = 'data/imagenet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ImageNet', data_root=data_root, data_prefix='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root=data_root, data_prefix='val', pipeline=test_pipeline),
)
test_dataloader = val_dataloader

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
# Other GPU counts: keep 64 images per GPU and scale the lr, or --cfg-options auto_scale_lr.enable=True.
auto_scale_lr = dict(enable=False, base_batch_size=512)

model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.imagenet_preprocessor}},
    backbone=dict(type='mmseg.ResNetV1c', depth=18, out_indices=(3,), norm_cfg=dict(type='BN', requires_grad=True)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ),
)
