# GDKD, DeepLabV3-R101-D8 -> DeepLabV3-R18-D8 on Cityscapes, from cached teacher logits (the teacher neither
# built nor run in training; its logits follow the crops, resizes and flips). Build the cache once, on a GPU:
#   python tools/cache_teacher.py configs/gdkd_cached_deeplabv3_r101_r18_cityscapes.py   (7.4 GB for 2,975 images)
_base_ = './gdkd_deeplabv3_r101_r18_cityscapes.py'

model = dict(teacher_cache='data/teacher_cache/deeplabv3_r101_cityscapes')
