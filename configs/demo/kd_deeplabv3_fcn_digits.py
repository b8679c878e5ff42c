# KD (Hinton et al.) on the decode-head logits, T=1: DeepLabV3 teacher -> FCN student on digit scenes.
_base_ = './_base_/distill.py'

demo_method = dict(key='KD-live', label='KD (T=1), live teacher', order=12, default=False)
model = dict(distill_losses=dict(decode=dict(loss=dict(type='KDLoss', temperature=1.0))))
