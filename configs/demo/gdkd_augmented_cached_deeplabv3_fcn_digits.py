# GDKD on digit scenes from cached teacher logits, with the usual segmentation augmentation (random resize
# 0.5-2.0, crop, flip) that the demo's own pipeline leaves out: the setting in which
# tools/teacher_cache_fidelity.py measures how closely the cached logits follow the augmentation. Build the
# cache with python tools/cache_teacher.py THIS_CONFIG --cfg-options model.teacher_checkpoint=TEACHER.pth
_base_ = './gdkd_deeplabv3_fcn_digits.py'

demo_method = None  # not a row of the demo's tables
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(64, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(64, 64), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(teacher_cache='work_dirs/demo/teacher_cache_augmented')
