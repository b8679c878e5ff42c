# Hard digit crops (gdkd_seg/classification/digit_crops.py): 32x32 crops, each centred on one real scan of
# scikit-learn's digits (the label), with neighbour digits reaching in, clutter, textured paper, any-hue inks,
# low resolution and noise; 8,000 train crops / 1,000 val crops of disjoint scans (the digit scenes' split),
# generated in memory. The model is the segmentation demo student's backbone (three stages of a ResNetV1c-18
# at 6/64 of its width) with strides (1, 2, 2) for classification: strides change no weight shape, so its
# backbone starts the segmentation student (tools/export_backbone.py). Why this difficulty and schedule:
# docs/pretraining.md.
_base_ = ['./runtime.py']

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2, padding_mode='reflect'),  # no flips: a mirrored 2 is no 2
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='DigitCropsClsDataset', split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DigitCropsClsDataset', split='val', pipeline=test_pipeline, test_mode=True),
)
test_dataloader = val_dataloader

max_epochs = 30
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, eta_min=1e-4)]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_epochs, save_best=None, max_keep_ckpts=1))
randomness = dict(seed=0)

model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.imagenet_preprocessor}},
    backbone=dict(
        type='mmseg.ResNetV1c',
        depth=18,
        stem_channels=6,
        base_channels=6,
        num_stages=3,
        out_indices=(2,),
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        norm_cfg=dict(type='BN', requires_grad=True),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead', num_classes=10, in_channels=24, loss=dict(type='CrossEntropyLoss', loss_weight=1.0)
    ),
)
