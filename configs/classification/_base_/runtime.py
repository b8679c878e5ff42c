# Runtime shared by the classification configs: mmpretrain's scope (its classifier, heads, datasets,
# transforms and Accuracy), epoch-based training with MMEngine's hooks; the best checkpoint by top-1
# accuracy is kept. The students' backbones are MMSeg's ResNetV1c (type='mmseg.ResNetV1c'), so that their
# weights start a segmentor (tools/export_backbone.py).
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
default_scope = 'mmpretrain'
env_cfg = dict(
    cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='nccl')
)
visualizer = dict(type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')])
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=2, save_best='accuracy/top1'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

imagenet_preprocessor = dict(
    type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
