# GDKD (k=3, w0=1, w1=1, w2=2, T=1) from cached teacher logits: DeepLabV3 -> FCN on digit scenes, the teacher
# neither built nor run in training. tools/demo.py builds the cache once per teacher and passes its folder.
_base_ = './gdkd_deeplabv3_fcn_digits.py'

demo_method = dict(key='GDKD', label='GDKD (k=3, w=1/1/2, T=1)', order=3, default=True, seeds=None)
model = dict(teacher_cache='work_dirs/demo/teacher_cache')
