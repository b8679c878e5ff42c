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
from .transforms import CheckSegLabels

__all__ = [
    'CLASSES',
    'GENERATOR_VERSION',
    'PALETTE',
    'CheckSegLabels',
    'DigitScenesDataset',
    'PlacedDigit',
    'generate_split',
    'load_digit_scans',
    'prepare_digit_scenes',
    'render_scene',
    'split_scans',
]
