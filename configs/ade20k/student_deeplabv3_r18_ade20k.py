# Baseline: the DeepLabV3-R18-D8 student alone on the ADE20K protocol of the distillation configs (80k
# iterations, batch 16, lr 0.02), built from the MMSeg R101 teacher's config (provenance: ../README.md).
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    '../_base_/runtime.py',
    '../_base_/schedule_80k.py',
    '../_base_/deeplabv3_r18_from_r101.py',
]

model = dict(cfg_path='mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-80k_ade20k-512x512.py')
train_dataloader = dict(batch_size=2, num_workers=4)
