from .hooks import DistillerHook, ValTimelineHook, evaluate_teacher
from .safety import NonFiniteLossError, NonFiniteLossHook, RandomStateHook

__all__ = [
    'DistillerHook',
    'ValTimelineHook',
    'evaluate_teacher',
    'NonFiniteLossError',
    'NonFiniteLossHook',
    'RandomStateHook',
]
