"""SegDistiller: a frozen MMSeg teacher distilled into a trainable MMSeg student."""

from typing import Optional, Union

import torch
from mmseg.registry import MODELS
from torch import Tensor

from ..config import resolve_model_cfg
from ..datasets.checks import decode_head_classes
from .distiller_base import BaseDistiller
from .teacher import CachedTeacher, FrozenTeacher

__all__ = ['SegDistiller', 'resolve_model_cfg', 'check_same_classes']


def check_same_classes(student, teacher) -> None:
    """Student and teacher segmentors (or the teacher's config) must predict the same classes (their logits
    are compared)."""
    teacher_classes = (
        (teacher.get('decode_head') or {}).get('num_classes')
        if isinstance(teacher, dict)
        else decode_head_classes(teacher)
    )
    counts = dict(student=decode_head_classes(student), teacher=teacher_classes)
    if None not in counts.values() and counts['student'] != counts['teacher']:
        raise ValueError(
            f'The student predicts {counts["student"]} classes and the teacher {counts["teacher"]}: '
            'distillation compares their logits class by class. Set the same num_classes in both '
            '(model.student.decode_head.num_classes / model.teacher.decode_head.num_classes, and the '
            'auxiliary heads), matching the dataset, and use a teacher checkpoint trained on that dataset.'
        )


@MODELS.register_module()
class SegDistiller(BaseDistiller):
    """Trains an MMSeg ``student`` with its own task losses plus distillation losses against a frozen MMSeg
    ``teacher`` (the call chain: :mod:`gdkd_seg.models.distiller_base`).

    Validation, test and inference use the student alone (``predict``/``tensor`` modes are the
    student's), so MMSeg's ``IoUMetric``, visualizer and ``tools/test.py`` work unchanged.

    Args:
        student (dict | str): MMSeg segmentor config (e.g. ``EncoderDecoder``), or a config file whose
            ``model`` it is (``'mmseg::deeplabv3/...py'``), or ``dict(cfg_path=FILE, **overrides)``.
        teacher (dict | str): the same forms. Built frozen and kept outside the module tree, so it is
            never in ``parameters()``, the optimizer, DDP or saved checkpoints.
        teacher_checkpoint (str): local path or URL of the teacher's weights, loaded by
            :meth:`init_weights` (the Runner calls it when training starts).
        distill_losses (dict): ``{name: dict(student=MODULE, teacher=MODULE, loss=LOSS_CFG)}``, e.g.
            ``decode=dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
            loss=dict(type='GDKDLoss', topk=3))``; optional ``connector`` and ``extra_inputs`` (see
            :class:`BaseDistiller`). An entry set to None is left out.
        components (dict): distiller-side networks whose outputs losses read (``SteppingStones``).
        detach_head_input (bool): the student's heads train on detached backbone features (feature-only KD).
        val_teacher (bool): evaluate the teacher on the val set before training (``TeacherEvalHook``).
        teacher_fp16 / teacher_channels_last: speed options of the teacher forward (see FrozenTeacher).
        teacher_cache (str): a folder of cached teacher logits (``tools/cache_teacher.py``): the teacher is
            neither built nor run in training, its logits come with the batch, following the augmentation
            (:mod:`gdkd_seg.datasets.teacher_cache`). Validation, test and export are unchanged.
    """

    def __init__(
        self,
        student: dict,
        teacher: Union[dict, str],
        teacher_checkpoint: Optional[str] = None,
        distill_losses: Optional[dict] = None,
        components: Optional[dict] = None,
        detach_head_input: bool = False,
        val_teacher: bool = False,
        teacher_fp16: bool = False,
        teacher_channels_last: bool = False,
        teacher_cache: Optional[str] = None,
        init_cfg=None,
    ):
        student = MODELS.build(resolve_model_cfg(student))
        teacher_cfg = resolve_model_cfg(teacher)
        if teacher_cache:
            if val_teacher:
                raise ValueError(
                    'val_teacher needs the live teacher, which model.teacher_cache does not build: '
                    'evaluate the teacher with its own config (tools/test.py)'
                )
            frozen = CachedTeacher(dict(teacher=teacher_cfg, teacher_checkpoint=teacher_checkpoint), teacher_cache)
            check_same_classes(student, teacher_cfg)
        else:
            frozen = FrozenTeacher(
                MODELS.build(teacher_cfg), teacher_checkpoint, fp16=teacher_fp16, channels_last=teacher_channels_last
            )
            check_same_classes(student, frozen.model)
        super().__init__(
            student=student,
            teacher=frozen,
            distill_losses=distill_losses,
            components=components,
            detach_head_input=detach_head_input,
            val_teacher=val_teacher,
            init_cfg=init_cfg,
        )
        self.teacher_cache = teacher_cache

    def gt_labels(self, data_samples) -> Tensor:
        """``(N, H, W)`` segmentation labels."""
        return torch.stack([sample.gt_sem_seg.data[0] for sample in data_samples])
