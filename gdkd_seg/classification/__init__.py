"""Classification (backbone pretraining) on mmpretrain: its classifier, heads, datasets (ImageNet,
CIFAR-100, folders), transforms and accuracy metric; ours are the digits data set, the torchvision teacher
and the distiller (``gdkd_seg.models.ClsDistiller``), registered in mmpretrain's registries so that the
classification configs run with ``default_scope='mmpretrain'``."""

from .digits import DigitsClsDataset
from .torchvision_teacher import torchvision_classifier

__all__ = ['DigitsClsDataset', 'torchvision_classifier']
