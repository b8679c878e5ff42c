# Feature-only KD across architectures: DeepLabV3-R101-D8 teacher -> SegFormer MiT-B0 student on Cityscapes,
# with the SegFormer GDKD config's data, optimiser and schedule. MixVisionTransformer runs the parts of its
# stages (backbone.layers.i) by hand, so hooks on them never fire: the student side names the backbone's outputs,
# 'backbone:0' .. 'backbone:3' (the recorder hooks the backbone and keeps element i of its output, before
# detach_head_input detaches that output for the head). MiT stage i (32/64/160/256 channels at 1/4, 1/8, 1/16,
# 1/32) goes through a bias-free 1x1 projector to R101 stage i's channels (256/512/1024/2048 at 1/4, 1/8, 1/8, 1/8:
# R101-D8 is dilated), and the MSE average-pools the larger map to the smaller: for stages 3 and 4 the teacher's
# maps are pooled to 1/16 and 1/32. The SegFormer head learns from cross-entropy on detached backbone features.
_base_ = '../students/gdkd_deeplabv3_r101_segformer_b0_cityscapes.py'

mit_b0_channels = [32, 64, 160, 256]
model = dict(
    detach_head_input=True,
    distill_losses=dict(
        _delete_=True,
        **{
            f'stage{i + 1}': dict(
                student=f'backbone:{i}',
                teacher=f'backbone.layer{i + 1}',
                loss=dict(type='FeatureKDLoss', loss_weight=1.0),
                connector=dict(type='FeatureProjector', in_channels=mit_b0_channels[i], out_channels=256 * 2**i),
            )
            for i in range(4)
        },
    ),
)
