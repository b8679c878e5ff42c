# KD (T=1) from cached teacher logits: DeepLabV3 -> FCN on digit scenes (the demo's curves).
_base_ = './kd_deeplabv3_fcn_digits.py'

demo_method = dict(key='KD', label='KD (T=1)', order=1, default=True)
model = dict(teacher_cache='work_dirs/demo/teacher_cache')
