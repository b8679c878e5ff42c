# The student alone, its backbone started from the digit-crops classifier distilled with GDKD (docs/pretraining.md:
# configs/classification/gdkd_r18w32_r18w4s3_digit_crops.py, then tools/export_backbone.py).
_base_ = './student_crops_plain_fcn_r18w4_digits.py'

demo_method = dict(key='student-crops-GDKD', label='student alone, backbone from GDKD crops training', order=21)
model = dict(backbone=dict(init_cfg=dict(checkpoint='work_dirs/backbones/digit_crops_r18w4s3_gdkd.pth')))
