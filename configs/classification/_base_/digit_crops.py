# Hard digit crops (gdkd_seg/classification/digit_crops.py): 32x32 crops, each centred on one real scan of
# scikit-learn's digits (the label), with neighbour digits reaching in, clutter, textured paper, any-hue inks,
# low resolution and noise; 8,000 train crops / 1,000 val crops of disjoint scans (the digit scenes' split),
# generated in memory. The model is the segmentation demo student's backbone (three stages of a ResNetV1c-18
# at 4/64 of its width) with strides (1, 2, 2) for classification: strides change no weight shape, so its
# backbone starts the segmentation student (tools/export_backbone.py). Why this difficulty and schedule:
# docs/pretraining.md. A delta on the easy digits task (./digits.py): its loaders, optimizer and runtime.
_base_ = ['./digits.py']

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=2, padding_mode='reflect'),  # no flips: a mirrored 2 is no 2
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(type='DigitCropsClsDataset', pipeline=train_pipeline))
val_dataloader = dict(batch_size=250, dataset=dict(type='DigitCropsClsDataset'))
test_dataloader = val_dataloader

max_epochs = 30
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, eta_min=1e-4)]
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_epochs))

model = dict(
    backbone=dict(
        stem_channels=4, base_channels=4, num_stages=3, out_indices=(2,), strides=(1, 2, 2), dilations=(1, 1, 1)
    ),
    head=dict(in_channels=16),
)
