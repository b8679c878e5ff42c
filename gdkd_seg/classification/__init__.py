"""Classification (backbone pretraining): classifiers, datasets, transforms and the accuracy metric,
registered in MMSegmentation's registries; the distiller is ``gdkd_seg.models.ClsDistiller``."""
from .datasets import CIFAR100Dataset, DigitsClsDataset, ImageFolderDataset, InMemoryClsDataset
from .metric import Accuracy
from .models import ImageClassifier, LinearClsHead, pack_predictions, stack_labels, torchvision_classifier
from .transforms import PackClsInputs, TorchvisionTransform

__all__ = ['CIFAR100Dataset', 'DigitsClsDataset', 'ImageFolderDataset', 'InMemoryClsDataset', 'Accuracy',
           'ImageClassifier', 'LinearClsHead', 'pack_predictions', 'stack_labels', 'torchvision_classifier',
           'PackClsInputs', 'TorchvisionTransform']
