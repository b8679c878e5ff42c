# Runtime of every segmentation config on a public data set: MMSeg's, with gdkd_seg registered, TensorBoard
# logging and the field's total batch of 16 (8 GPUs x 2 images) for auto_scale_lr.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['gdkd_seg'], allow_failed_imports=False)

visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])
auto_scale_lr = dict(enable=False, base_batch_size=16)
