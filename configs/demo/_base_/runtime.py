# Runtime and schedule of the demo runs (2 CPU cores): poly decay as in the Cityscapes protocol, with a short
# schedule. tools/demo.py --quick shortens it with --cfg-options (see schedule_options there).
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='gloo')
)
# No fixed visualizer name: each run gets its own (runs in one process must not share a save_dir). Loss terms
# and mIoU go to TensorBoard too: tensorboard --logdir work_dirs/demo
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

# From scratch, 48,000 iterations, where the student alone reaches its plateau (docs/demo.md), AdamW at lr 0.03 for
# every student. tools/demo.py (make demo) shortens the students' schedule; tools/demo.py --full keeps this one.
max_iters = 48000
optim_wrapper = dict(type='OptimWrapper', clip_grad=None, optimizer=dict(type='AdamW', lr=0.03, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
randomness = dict(seed=0)
