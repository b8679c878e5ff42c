# Baseline: the DeepLabV3-R18-D8 student alone (MMSeg's own R18 config) on the Cityscapes protocol of the
# distillation configs: 40k iterations, batch 16, lr 0.02 (provenance: ../README.md).
_base_ = ['mmseg::_base_/datasets/cityscapes.py', '../_base_/runtime.py', '../_base_/schedule_40k.py']

model = dict(cfg_path='mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py')
train_dataloader = dict(batch_size=2, num_workers=4)
