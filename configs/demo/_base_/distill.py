# The demo distiller: the FCN student learns from the DeepLabV3 teacher's decode-head logits (both at 1/8
# resolution). Children set the loss; tools/demo.py passes model.teacher_checkpoint.
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
            loss=dict(type='KDLoss', temperature=1.0, loss_weight=1.0),
        )
    ),
)
custom_hooks = [dict(type='DistillerHook', warmup_iters=0)]
