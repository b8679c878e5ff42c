from .hooks import DistillWarmupHook, TeacherEvalHook, ValTimelineHook, evaluate_teacher
from .safety import DropStaleLossScalarsHook, NonFiniteLossError, NonFiniteLossHook, RandomStateHook

__all__ = [
    'DistillWarmupHook',
    'TeacherEvalHook',
    'ValTimelineHook',
    'evaluate_teacher',
    'DropStaleLossScalarsHook',
    'NonFiniteLossError',
    'NonFiniteLossHook',
    'RandomStateHook',
]
