"""ClsDistiller: a frozen classifier teacher distilled into an mmpretrain classifier student, with the same
losses as the segmentation distiller on their ``(N, C)`` path; the student's backbone (MMSeg's
``ResNetV1c``) then starts a segmentor (``tools/export_backbone.py``)."""

from typing import Optional, Union

import torch
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample
from mmseg.registry import MODELS
from torch import Tensor

from ..config import resolve_model_cfg
from .distiller_base import BaseDistiller
from .teacher import FrozenTeacher


def build_classifier(cfg: Union[dict, str]):
    """An mmpretrain classifier (or ``TorchvisionClassifier``) from any of the config forms, built in
    mmpretrain's scope whatever the default scope is."""
    return MMPRETRAIN_MODELS.build(dict(dict(_scope_='mmpretrain'), **resolve_model_cfg(cfg)))


class FrozenClassifier(FrozenTeacher):
    """A :class:`FrozenTeacher` whose forward is the classifier's own: ``model(inputs)`` gives logits (an
    mmpretrain ``ImageClassifier`` in ``tensor`` mode, or any ``nn.Module`` classifier such as torchvision's)."""

    def run_model(self, inputs: Tensor):
        self.model(inputs)

    def predict(self, inputs: Tensor, data_samples):
        self._require_loaded()
        self.model.eval()
        with torch.no_grad():
            logits = self.model(inputs)
        samples = data_samples if data_samples is not None else [DataSample() for _ in range(len(logits))]
        scores = logits.float().softmax(dim=1)
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score).set_pred_label(score.argmax(keepdim=True))
        return samples


def _no_ignore_index(decl):
    """Class labels have no 'ignore' value: the losses' segmentation default ``ignore_index=255`` would
    drop every sample of class 255 (ImageNet has one), so it defaults to None here."""
    if isinstance(decl, dict) and isinstance(decl.get('loss'), dict):
        decl = dict(decl, loss=dict(dict(ignore_index=None), **decl['loss']))
    return decl


@MMPRETRAIN_MODELS.register_module()
@MODELS.register_module()
class ClsDistiller(BaseDistiller):
    """Trains a classifier ``student`` with its own loss plus distillation losses against ``teacher``.

    The losses (``GDKDLoss``, ``DKDLoss``, ``KDLoss``, ...) see ``(N, C)`` logits and ``(N,)`` labels.
    ``predict``/``tensor`` modes are the student's, so mmpretrain's ``Accuracy`` evaluates the student.

    Args:
        student (dict | str): an mmpretrain ``ImageClassifier`` config, e.g. with MMSeg's ResNetV1c-18
            backbone (``type='mmseg.ResNetV1c'``, whose weights ``tools/export_backbone.py`` hands to a
            segmentor), or a config file whose ``model`` it is, or ``dict(cfg_path=FILE, **overrides)``.
        teacher (dict | str): the same forms, or ``dict(type='TorchvisionClassifier', name='resnet34')``.
            Kept frozen and outside the module tree; ``model(inputs)`` must return logits.
        teacher_checkpoint (str): local path or URL of the teacher's weights (a torchvision state dict
            fits a ``TorchvisionClassifier``), loaded by :meth:`init_weights`.
        distill_losses (dict): as in ``SegDistiller``, e.g. ``logits=dict(student='head.fc', teacher='fc',
            loss=dict(type='GDKDLoss', topk=5, ...))``; ``loss.ignore_index`` defaults to None.
        val_teacher (bool): evaluate the teacher on the val set before training (``TeacherEvalHook``).
        teacher_fp16 / teacher_channels_last: speed options of the teacher forward (see FrozenTeacher).
    """

    def __init__(
        self,
        student: Union[dict, str],
        teacher: Union[dict, str],
        teacher_checkpoint: Optional[str] = None,
        distill_losses: Optional[dict] = None,
        val_teacher: bool = False,
        teacher_fp16: bool = False,
        teacher_channels_last: bool = False,
        init_cfg=None,
    ):
        if isinstance(distill_losses, dict):
            distill_losses = {name: _no_ignore_index(decl) for name, decl in distill_losses.items()}
        super().__init__(
            student=build_classifier(student),
            teacher=FrozenClassifier(
                build_classifier(teacher), teacher_checkpoint, fp16=teacher_fp16, channels_last=teacher_channels_last
            ),
            distill_losses=distill_losses,
            val_teacher=val_teacher,
            init_cfg=init_cfg,
        )

    def gt_labels(self, data_samples) -> Tensor:
        """``(N,)`` class labels."""
        return torch.cat([sample.gt_label.reshape(-1)[:1] for sample in data_samples]).long()
