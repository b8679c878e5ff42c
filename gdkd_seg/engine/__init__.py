from .hooks import DistillerHook, evaluate_teacher

__all__ = ['DistillerHook', 'evaluate_teacher']
