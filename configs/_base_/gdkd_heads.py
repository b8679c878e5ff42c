# GDKD on both heads of an MMSeg DeepLabV3/PSPNet teacher and student, the GDKD authors' Cityscapes setting:
# k=3, w0=1, w1=1, w2=2, T=1 on the raw head logits at 1/8 resolution; decode head 1, auxiliary head 0.4.
# A data set's GDKD config lists this next to its distillation base and names the networks:
#   _base_ = ['./_base_/distill_cityscapes_40k.py', './_base_/gdkd_heads.py']
#   model = dict(student=..., teacher=..., teacher_checkpoint=...)
gdkd = dict(type='GDKDLoss', topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0)
model = dict(
    type='SegDistiller',
    distill_losses=dict(
        decode=dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(gdkd, loss_weight=1.0)),
        aux=dict(
            student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg', loss=dict(gdkd, loss_weight=0.4)
        ),
    ),
)
