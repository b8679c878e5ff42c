# GDKD: DeepLabV3-R101-D8 teacher -> DeepLabV3-R18-D8 student on Cityscapes, the GDKD authors' setting
# (k=3, w0=1, w1=1, w2=2, T=1 on the raw head logits at 1/8 resolution; decode head 1, auxiliary head 0.4).
# The student is MMSeg's own R18 config (backbone from open-mmlab://resnet18_v1c).
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    './_base_/distill_cityscapes_40k.py',
]

# MMSeg model zoo: DeepLabV3-R101-D8, 512x1024, 40k iterations (77.12 mIoU). Without internet, download it
# elsewhere and pass --cfg-options model.teacher_checkpoint=/path/to/file.pth
teacher_checkpoint = ('https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
                      'deeplabv3_r101-d8_512x1024_40k_cityscapes/'
                      'deeplabv3_r101-d8_512x1024_40k_cityscapes_20200605_012241-7fd3f799.pth')
gdkd = dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0)

model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-40k_cityscapes-512x1024.py',
    teacher_checkpoint=teacher_checkpoint,
    distill_losses=[
        dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg',
             loss=dict(gdkd, loss_weight=1.0)),
        dict(name='aux', student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg',
             loss=dict(gdkd, loss_weight=0.4)),
    ])
