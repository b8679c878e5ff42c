# MMSeg's 80k-iteration schedule (SGD, momentum 0.9, weight decay 5e-4, poly decay) at the field's lr 0.02 for
# 16 images, keeping the two best checkpoints by mIoU.
_base_ = ['mmseg::_base_/schedules/schedule_80k.py']

optim_wrapper = dict(optimizer=dict(lr=0.02))
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='mIoU'))
