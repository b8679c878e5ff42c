from .hooks import DistillWarmupHook, TeacherEvalHook, ValTimelineHook, evaluate_teacher
from .safety import NonFiniteLossError, NonFiniteLossHook, RandomStateHook

__all__ = [
    'DistillWarmupHook',
    'TeacherEvalHook',
    'ValTimelineHook',
    'evaluate_teacher',
    'NonFiniteLossError',
    'NonFiniteLossHook',
    'RandomStateHook',
]
