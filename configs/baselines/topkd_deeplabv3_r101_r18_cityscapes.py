# Baseline: TopKD (TDL with k=5 plus TSM on the teacher logits), DeepLabV3-R101-D8 -> DeepLabV3-R18-D8 on Cityscapes.
_base_ = '../_base_/distill_cityscapes_40k.py'

topkd = dict(
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
model = dict(distill_losses=dict(decode=dict(loss=topkd), aux=dict(loss=topkd)))
