# The digit-crops student alone (the baseline of gdkd_r18w32_r18w4s3_digit_crops.py): the segmentation demo
# student's backbone, three stages of a ResNetV1c-18 at 4/64 of its width (16 channels out).
_base_ = ['./_base_/digit_crops.py']
