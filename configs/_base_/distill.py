# What every distillation method shares, as variables a data set's distillation base uses: the decode and
# auxiliary heads' logits compared at loss weights 1 and 0.4 (a method config sets each loss's type and
# settings), and the warm-up and teacher-evaluation hooks.
distill_heads = dict(
    decode=dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(loss_weight=1.0)),
    aux=dict(student='auxiliary_head.conv_seg', teacher='auxiliary_head.conv_seg', loss=dict(loss_weight=0.4)),
)
distill_hooks = [dict(type='DistillWarmupHook', warmup_iters=0), dict(type='TeacherEvalHook')]
