# Digit scenes (gdkd_seg/datasets/digit_scenes.py): 64x64 scenes of real handwritten digits, 11 classes.
# tools/demo.py writes them to data_root (python tools/demo.py --data-only does only that).
dataset_type = 'DigitScenesDataset'
data_root = 'data/digit_scenes'
# The scenes are generated with the variety augmentation would add; no flips (a mirrored 2 is no 2).
pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        pipeline=pipeline,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
    ),
)
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        pipeline=pipeline,
        test_mode=True,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
