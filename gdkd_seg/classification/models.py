"""Image classifiers: an MMSeg backbone with a linear head, and torchvision classifiers as teachers.

:class:`ImageClassifier` keeps the backbone under ``backbone.`` so that its weights load unchanged into an
MMSeg segmentor's ``backbone`` (``tools/export_backbone.py``).
"""
from typing import Dict, List, Optional

import torch
from mmengine.model import BaseModel, BaseModule
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from mmseg.registry import MODELS

IMAGENET_PREPROCESSOR = dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                             std=[58.395, 57.12, 57.375], bgr_to_rgb=True)


def stack_labels(data_samples) -> Tensor:
    """``(N,)`` class labels of the samples' ``gt_label``."""
    return torch.stack([sample.gt_label.reshape(()) for sample in data_samples]).long()


def pack_predictions(logits: Tensor, data_samples=None) -> List[BaseDataElement]:
    """Write ``pred_score`` (softmax) and ``pred_label`` into the samples (new ones when None)."""
    if data_samples is None:
        data_samples = [BaseDataElement() for _ in range(logits.shape[0])]
    scores = logits.float().softmax(dim=1)
    for sample, score in zip(data_samples, scores):
        sample.pred_score = score
        sample.pred_label = score.argmax().reshape(1)
    return data_samples


@MODELS.register_module()
class LinearClsHead(BaseModule):
    """Global average pooling of the last backbone feature map, dropout and a linear layer.

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the last backbone output (512 for ResNet-18, 2048 for ResNet-50).
        dropout_ratio (float): dropout before the linear layer.
        loss (dict): the classification loss (MMSeg's ``CrossEntropyLoss`` by default, ``loss_ce``).
    """

    def __init__(self, num_classes: int, in_channels: int, dropout_ratio: float = 0.0,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True),
                 init_cfg=dict(type='Normal', layer='Linear', std=0.01)):
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        self.loss_fn = MODELS.build(loss)

    def forward(self, feats) -> Tensor:
        x = feats[-1] if isinstance(feats, (list, tuple)) else feats
        return self.fc(self.dropout(self.pool(x).flatten(1)))

    def loss(self, logits: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        with torch.no_grad():
            acc = (logits.argmax(dim=1) == labels).float().mean() * 100
        return {self.loss_fn.loss_name: self.loss_fn(logits, labels), 'acc_top1': acc}


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """``head(backbone(x))`` with MMEngine's ``loss`` / ``predict`` / ``tensor`` modes.

    Args:
        backbone (dict): an MMSeg backbone, e.g. ``dict(type='ResNetV1c', depth=18, out_indices=(3,))``.
        head (dict): e.g. ``dict(type='LinearClsHead', num_classes=1000, in_channels=512)``.
        data_preprocessor (dict): defaults to ImageNet mean/std normalisation, BGR to RGB.

    Samples carry ``gt_label``; ``predict`` adds ``pred_score`` and ``pred_label`` (see ``Accuracy``).
    """

    def __init__(self, backbone: dict, head: dict, data_preprocessor: Optional[dict] = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(IMAGENET_PREPROCESSOR), init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": expected loss, predict or tensor')

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        return self.head(self.backbone(inputs))

    def loss(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        return self.head.loss(self._forward(inputs), stack_labels(data_samples).to(inputs.device))

    def predict(self, inputs: Tensor, data_samples=None) -> List[BaseDataElement]:
        return pack_predictions(self._forward(inputs), data_samples)


@MODELS.register_module(name='TorchvisionClassifier')
def torchvision_classifier(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """``torchvision.models.<name>(weights=None, num_classes=...)``, e.g. a ResNet-34 teacher.

    The model's keys are torchvision's own, so a torchvision checkpoint (``resnet34-b627a593.pth``) is
    the distiller's ``teacher_checkpoint`` as it is. Its logits are module ``'fc'`` for ResNets
    (``'classifier.1'`` for MobileNetV2, ...). Weights are never downloaded here.
    """
    import torchvision
    if kwargs.get('weights') is not None:
        raise ValueError(f'TorchvisionClassifier builds {name} without weights; give the weights file as '
                         f'model.teacher_checkpoint (e.g. https://download.pytorch.org/models/...pth or a '
                         f'local path) instead of weights={kwargs["weights"]!r}')
    kwargs.pop('weights', None)
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except ValueError as err:
        raise ValueError(f'Unknown torchvision model {name!r}; some available: '
                         f'{torchvision.models.list_models(torchvision.models)[:20]}') from err


__all__ = ['ImageClassifier', 'LinearClsHead', 'torchvision_classifier', 'pack_predictions', 'stack_labels',
           'IMAGENET_PREPROCESSOR']
