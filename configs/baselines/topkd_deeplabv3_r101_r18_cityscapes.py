# TopKD (TSM + Top-K Decoupled Loss + pixel contrastive term); DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8
# student, same schedule and head weights as GDKD. The TSM schedule is our reading of the paper (see TopKScaling).
_base_ = '../gdkd_deeplabv3_r101_r18_cityscapes.py'

topkd = dict(
    _delete_=True,
    type='TopKDLoss',
    topk=5,
    alpha=1.0,
    beta=1.0,
    contrast_weight=0.1,
    tau=0.1,
    contrast_pixels=1024,
    teacher_scaling=dict(
        type='TopKScaling', scale_schedule='linear', max_scale=1.5, min_scale=1.0, gt_scale=2.0, delta_coef=0.1
    ),
)
model = dict(
    distill_losses=dict(decode=dict(loss=dict(topkd, loss_weight=1.0)), aux=dict(loss=dict(topkd, loss_weight=0.4)))
)
