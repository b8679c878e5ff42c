# The demo's method-neutral distiller: the FCN student learns from the DeepLabV3 teacher's decode-head logits
# (both at 1/8 resolution); children set the loss's type and settings. tools/demo.py passes teacher_checkpoint.
_base_ = ['./fcn_student.py', './digit_scenes.py', './runtime.py']

model = dict(
    _delete_=True,
    type='SegDistiller',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/deeplabv3_teacher.py',
    teacher_checkpoint=None,  # --cfg-options model.teacher_checkpoint=work_dirs/demo/teacher-.../iter_N.pth
    distill_losses=dict(
        decode=dict(
            student='decode_head.conv_seg',
            teacher='decode_head.conv_seg',
            loss=dict(loss_weight=1.0),
        )
    ),
)
custom_hooks = [dict(type='DistillWarmupHook', warmup_iters=0), dict(type='TeacherEvalHook')]
