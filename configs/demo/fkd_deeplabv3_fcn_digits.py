# Feature-only KD (Cooper et al., arXiv 2511.14981): DeepLabV3 -> FCN on digit scenes. The student's backbone
# learns only from MSE to the teacher's features through bias-free 1x1 projectors: its stage 2 to the
# teacher's stage 2 and its last stage to the teacher's last stage (the features each head reads); the FCN
# head learns from cross-entropy on detached backbone features. Other teacher layers:
#   python tools/rank_teacher_layers.py configs/demo/fkd_deeplabv3_fcn_digits.py TEACHER.pth --num-images 64
_base_ = './_base_/distill.py'

demo_method = dict(key='FKD', label='feature-only KD', order=11, default=False)
fkd = dict(type='FeatureKDLoss', loss_weight=1.0)
model = dict(
    detach_head_input=True,
    distill_losses=dict(
        _delete_=True,
        layer2=dict(
            student='backbone.layer2',
            teacher='backbone.layer2',
            loss=fkd,
            connector=dict(type='FeatureProjector', in_channels=32, out_channels=64),
        ),
        layer3=dict(
            student='backbone.layer3',
            teacher='backbone.layer4',
            loss=fkd,
            connector=dict(type='FeatureProjector', in_channels=64, out_channels=256),
        ),
    ),
)
