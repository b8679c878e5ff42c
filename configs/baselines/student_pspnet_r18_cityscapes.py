# Baseline: the PSPNet-R18-D8 student alone, with the distillation configs' schedule (40k it, batch 16, lr 0.02).
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)

optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)]
train_cfg = dict(max_iters=40000)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='mIoU'))
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
