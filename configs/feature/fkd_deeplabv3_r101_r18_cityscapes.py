# Feature-only KD (Cooper et al., arXiv 2511.14981): DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student on
# Cityscapes, same schedule as GDKD. The R18 backbone learns only from the MSE between each stage (through a
# bias-free 1x1 projector to R101's channels) and the teacher's same stage, the larger map average-pooled to
# the smaller; the decode and auxiliary heads learn from cross-entropy on detached backbone features
# (detach_head_input=True). To pick other teacher layers, rank them by knowledge quality:
#   python tools/rank_teacher_layers.py configs/feature/fkd_deeplabv3_r101_r18_cityscapes.py TEACHER.pth
_base_ = '../_base_/distill_cityscapes_40k.py'

model = dict(
    detach_head_input=True,
    distill_losses=dict(
        _delete_=True,
        **{
            f'layer{i}': dict(
                student=f'backbone.layer{i}',
                teacher=f'backbone.layer{i}',
                loss=dict(type='FeatureKDLoss', loss_weight=1.0),
                connector=dict(type='FeatureProjector', in_channels=64 * 2 ** (i - 1), out_channels=256 * 2 ** (i - 1)),
            )
            for i in (1, 2, 3, 4)
        },
    ),
)
