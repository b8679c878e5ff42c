# scikit-learn's handwritten digits as a 10-class task that trains on 2 CPU cores in seconds: the 1,797
# real 8x8 scans upsampled to 32x32 (1,257 train / 540 val scans, disjoint). No download, no data_root.
# The model is a quarter-width ResNetV1c-18 (the digit-scenes demo student's width).
_base_ = ['./runtime.py']

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),  # no flips: a mirrored 2 is no 2
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='DigitsClsDataset', split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DigitsClsDataset', split='val', pipeline=test_pipeline, test_mode=True),
)
test_dataloader = val_dataloader

max_epochs = 4
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, eta_min=1e-4)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs, save_best=None, max_keep_ckpts=1))
randomness = dict(seed=0)

model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.imagenet_preprocessor}},
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        stem_channels=16,
        base_channels=16,
        out_indices=(3,),
        norm_cfg=dict(type='BN', requires_grad=True),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=10, in_channels=128, loss=dict(type='CrossEntropyLoss', loss_weight=1.0)
    ),
)
