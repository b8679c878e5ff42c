from .cls_distiller import ClsDistiller, FrozenClassifier
from .connectors import FeatureProjector
from .distiller_base import BaseDistiller
from .feature_only import detach_head_input
from .recorders import ModuleOutputRecorder
from .seg_distiller import SegDistiller
from .stepping_stones import SteppingStones
from .teacher import CachedTeacher, FrozenTeacher, TeacherCheckpointError

__all__ = [
    'CachedTeacher',
    'ModuleOutputRecorder',
    'SegDistiller',
    'resolve_model_cfg',
    'FrozenTeacher',
    'TeacherCheckpointError',
    'BaseDistiller',
    'ClsDistiller',
    'FrozenClassifier',
    'FeatureProjector',
    'SteppingStones',
    'detach_head_input',
]
