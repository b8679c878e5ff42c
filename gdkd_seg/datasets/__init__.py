"""Data of gdkd-seg: the digit-scenes data set, label checks, and the teacher cache's manifest and transforms."""

from .digit_scenes import (
    CLASSES,
    GENERATOR_VERSION,
    PALETTE,
    DigitScenesDataset,
    PlacedDigit,
    generate_split,
    load_digit_scans,
    prepare_digit_scenes,
    render_scene,
    split_scans,
)
from .teacher_cache import TeacherCacheError, use_teacher_cache
from .teacher_logits import (
    LoadTeacherLogits,
    PackSegInputsWithTeacherLogits,
    RandomCropWithTeacherLogits,
    RandomFlipWithTeacherLogits,
    RandomResizeWithTeacherLogits,
    ResizeWithTeacherLogits,
)
from .transforms import CheckSegLabels

__all__ = [
    'CLASSES',
    'GENERATOR_VERSION',
    'PALETTE',
    'CheckSegLabels',
    'LoadTeacherLogits',
    'PackSegInputsWithTeacherLogits',
    'RandomCropWithTeacherLogits',
    'RandomFlipWithTeacherLogits',
    'RandomResizeWithTeacherLogits',
    'ResizeWithTeacherLogits',
    'TeacherCacheError',
    'use_teacher_cache',
    'DigitScenesDataset',
    'PlacedDigit',
    'generate_split',
    'load_digit_scans',
    'prepare_digit_scenes',
    'render_scene',
    'split_scans',
]
