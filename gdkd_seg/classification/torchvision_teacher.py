"""torchvision classifiers as frozen teachers (their own keys, so torchvision's weight files load as they
are)."""

from mmpretrain.registry import MODELS
from torch import nn


@MODELS.register_module(name='TorchvisionClassifier')
def torchvision_classifier(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """``torchvision.models.<name>(weights=None, num_classes=...)``, e.g. a ResNet-34 teacher.

    The model's keys are torchvision's own, so a torchvision checkpoint (``resnet34-b627a593.pth``) is
    the distiller's ``teacher_checkpoint`` as it is. Its logits are module ``'fc'`` for ResNets
    (``'classifier.1'`` for MobileNetV2, ...). Weights are never downloaded here.
    """
    import torchvision

    if kwargs.get('weights') is not None:
        raise ValueError(
            f'TorchvisionClassifier builds {name} without weights; give the weights file as '
            f'model.teacher_checkpoint (e.g. https://download.pytorch.org/models/...pth or a '
            f'local path) instead of weights={kwargs["weights"]!r}'
        )
    kwargs.pop('weights', None)
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except ValueError as err:
        raise ValueError(
            f'Unknown torchvision model {name!r}; some available: '
            f'{torchvision.models.list_models(torchvision.models)[:20]}'
        ) from err
