# The ResNet-18 student of a data set without an MMSeg R18 config: the R101 teacher's config (a child config
# sets model.cfg_path to it) with MMSeg's Cityscapes R18 settings (ResNetV1c-18, heads 512/256 in, 128/64 wide).
model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64),
)
