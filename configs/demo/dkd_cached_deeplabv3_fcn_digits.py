# DKD (alpha=1, beta=2, T=1) from cached teacher logits: DeepLabV3 -> FCN on digit scenes (the demo's curves).
_base_ = './dkd_deeplabv3_fcn_digits.py'

demo_method = dict(key='DKD', label='DKD (a=1, b=2, T=1)', order=2, default=True)
model = dict(teacher_cache='work_dirs/demo/teacher_cache')
