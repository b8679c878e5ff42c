"""ClsDistiller: a frozen classifier teacher distilled into a classifier student, with the same losses
as the segmentation distiller on their ``(N, C)`` path; the student's backbone then starts a segmentor."""
from typing import List, Optional, Union

import torch
from torch import Tensor

from mmseg.registry import MODELS
from ..classification.models import pack_predictions, stack_labels
from .distiller_base import BaseDistiller, resolve_model_cfg
from .teacher import FrozenTeacher


class FrozenClassifier(FrozenTeacher):
    """A :class:`FrozenTeacher` whose forward is the classifier's own: ``model(inputs)`` gives logits
    (an ``ImageClassifier`` in ``tensor`` mode, or any ``nn.Module`` classifier such as torchvision's)."""

    def run_model(self, inputs: Tensor):
        self.model(inputs)

    def predict(self, inputs: Tensor, data_samples):
        self._require_loaded()
        self.model.eval()
        with torch.no_grad():
            return pack_predictions(self.model(inputs), data_samples)


def _no_ignore_index(spec: dict) -> dict:
    """Class labels have no 'ignore' value: the losses' segmentation default ``ignore_index=255`` would
    drop every sample of class 255 (ImageNet has one), so it defaults to None here."""
    if isinstance(spec.get('loss'), dict):
        spec = dict(spec, loss=dict(dict(ignore_index=None), **spec['loss']))
    return spec


@MODELS.register_module()
class ClsDistiller(BaseDistiller):
    """Trains a classifier ``student`` with its own loss plus distillation losses against ``teacher``.

    The losses (``GDKDLoss``, ``DKDLoss``, ``KDLoss``, ...) see ``(N, C)`` logits and ``(N,)`` labels.
    ``predict``/``tensor`` modes are the student's, so ``Accuracy`` evaluates the student.

    Args:
        student (dict | str): classifier config, e.g. ``ImageClassifier`` with a ``ResNetV1c`` depth-18
            backbone (whose weights ``tools/export_backbone.py`` hands to a segmentor), or a config file
            whose ``model`` it is, or ``dict(cfg_path=FILE, **overrides)``.
        teacher (dict | str): the same forms, or ``dict(type='TorchvisionClassifier', name='resnet34')``.
            Kept frozen and outside the module tree; ``model(inputs)`` must return logits.
        teacher_checkpoint (str): local path or URL of the teacher's weights (a torchvision state dict
            fits a ``TorchvisionClassifier``), loaded by :meth:`init_weights`.
        distill_losses (list[dict]): as in ``SegDistiller``, e.g. ``dict(name='logits', student='head.fc',
            teacher='fc', loss=dict(type='GDKDLoss', topk=5, ...))``; ``loss.ignore_index`` defaults to
            None.
        val_teacher (bool): evaluate the teacher on the val set before training (``DistillerHook``).
        teacher_fp16 / teacher_channels_last: speed options of the teacher forward (see FrozenTeacher).
    """

    def __init__(self, student: Union[dict, str], teacher: Union[dict, str],
                 teacher_checkpoint: Optional[str] = None, distill_losses: Optional[List[dict]] = None,
                 val_teacher: bool = False, teacher_fp16: bool = False, teacher_channels_last: bool = False,
                 init_cfg=None):
        super().__init__(
            student=MODELS.build(resolve_model_cfg(student)),
            teacher=FrozenClassifier(MODELS.build(resolve_model_cfg(teacher)), teacher_checkpoint,
                                     fp16=teacher_fp16, channels_last=teacher_channels_last),
            distill_losses=[_no_ignore_index(dict(s)) for s in distill_losses or []],
            val_teacher=val_teacher, init_cfg=init_cfg)

    def gt_labels(self, data_samples) -> Tensor:
        """``(N,)`` class labels."""
        return stack_labels(data_samples)
