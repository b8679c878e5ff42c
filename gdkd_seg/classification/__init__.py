"""Classification (backbone pretraining) on mmpretrain: its classifier, heads, datasets (ImageNet,
CIFAR-100, folders), transforms and accuracy metric; ours are the digits and hard digit-crops data sets,
the torchvision teacher and the distiller (``gdkd_seg.models.ClsDistiller``), registered in mmpretrain's
registries so that the classification configs run with ``default_scope='mmpretrain'``."""

from .digit_crops import DigitCropsClsDataset
from .digits import DigitsClsDataset
from .torchvision_teacher import torchvision_classifier

__all__ = ['DigitCropsClsDataset', 'DigitsClsDataset', 'torchvision_classifier']
