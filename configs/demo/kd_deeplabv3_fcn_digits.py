# KD (Hinton et al.) on the decode-head logits, T=1: DeepLabV3 teacher -> FCN student on digit scenes.
_base_ = './_base_/distill.py'

model = dict(distill_losses=[
    dict(name='decode', student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         loss=dict(type='KDLoss', temperature=1.0, loss_weight=1.0))])
