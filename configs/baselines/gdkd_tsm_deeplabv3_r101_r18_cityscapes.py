# GDKD + TSM: GDKD's Cityscapes setting on teacher logits passed through TopKD's Top-K Scaling Module;
# DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student. TSM scales GDKD's top-3 (docs/methods.md: why); the
# rest of its schedule is our reading of the paper (see TopKScaling).
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

tsm = dict(type='TopKScaling', k=3, scale_schedule='linear', max_scale=1.5, min_scale=1.0, gt_scale=2.0, delta_coef=0.1)
model = dict(distill_losses=dict(decode=dict(loss=dict(teacher_scaling=tsm)), aux=dict(loss=dict(teacher_scaling=tsm))))
