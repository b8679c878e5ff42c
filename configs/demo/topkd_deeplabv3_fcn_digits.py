# TopKD (TSM + Top-K Decoupled Loss + pixel contrastive term): DeepLabV3 -> FCN on digit scenes (11 classes).
_base_ = './_base_/distill.py'

demo_method = dict(key='TopKD', label='TopKD (k=5)', order=8, default=False)
model = dict(
    distill_losses=dict(
        decode=dict(
            loss=dict(
                type='TopKDLoss',
                topk=5,
                alpha=1.0,
                beta=1.0,
                contrast_weight=0.1,
                tau=0.1,
                contrast_pixels=1024,
                loss_weight=1.0,
                teacher_scaling=dict(
                    type='TopKScaling',
                    scale_schedule='linear',
                    max_scale=1.5,
                    min_scale=1.0,
                    gt_scale=2.0,
                    delta_coef=0.1,
                ),
            )
        )
    )
)
