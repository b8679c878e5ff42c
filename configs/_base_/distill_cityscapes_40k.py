# Schedule and runtime shared by the Cityscapes distillation configs (the field's protocol: 40k iterations,
# batch 16 = 8 GPUs x 2 images, SGD lr 0.02, momentum 0.9, weight decay 5e-4, poly decay).
# Fewer GPUs: keep 2 images per GPU and scale the lr linearly (4 GPUs: lr 0.01), or let MMEngine do it with
# --cfg-options auto_scale_lr.enable=True.
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)
default_scope = 'mmseg'

train_dataloader = dict(batch_size=2, num_workers=4)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0005), clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000, max_keep_ckpts=2, save_best='mIoU'))
custom_hooks = [dict(type='DistillerHook', warmup_iters=0)]
auto_scale_lr = dict(enable=False, base_batch_size=16)
