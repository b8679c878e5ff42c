# GDKD (k=3, w0=1, w1=1, w2=2, T=1) on teacher logits passed through TopKD's Top-K Scaling Module:
# DeepLabV3 -> FCN on digit scenes. TSM scales the same top-3 that GDKD's partition uses (docs/methods.md).
_base_ = './gdkd_deeplabv3_fcn_digits.py'

demo_method = dict(key='GDKD+TSM', label='GDKD + TopKD scaling', order=9, default=False, seeds=None)
model = dict(
    distill_losses=dict(
        decode=dict(
            loss=dict(
                teacher_scaling=dict(
                    type='TopKScaling',
                    k=3,
                    scale_schedule='linear',
                    max_scale=1.5,
                    min_scale=1.0,
                    gt_scale=2.0,
                    delta_coef=0.1,
                )
            )
        )
    )
)
