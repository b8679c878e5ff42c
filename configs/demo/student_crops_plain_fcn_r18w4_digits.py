# The student alone, its backbone started from a plainly trained digit-crops classifier instead of from scratch
# (docs/pretraining.md: configs/classification/resnet18w4s3_v1c_digit_crops.py, then tools/export_backbone.py).
_base_ = './student_fcn_r18w4_digits.py'

demo_method = dict(
    key='student-crops', label='student alone, backbone from plain crops training', order=20, default=False
)
model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='work_dirs/backbones/digit_crops_r18w4s3_plain.pth'))
)
