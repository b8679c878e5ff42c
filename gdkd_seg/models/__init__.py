from .cls_distiller import ClsDistiller, FrozenClassifier
from .connectors import FeatureProjector
from .distiller_base import BaseDistiller
from .feature_only import detach_head_input
from .recorders import ModuleOutputRecorder
from .seg_distiller import SegDistiller, resolve_model_cfg
from .stepping_stones import SteppingStones
from .teacher import FrozenTeacher, TeacherCheckpointError, check_state_dict_fits

__all__ = [
    'ModuleOutputRecorder',
    'SegDistiller',
    'resolve_model_cfg',
    'FrozenTeacher',
    'TeacherCheckpointError',
    'check_state_dict_fits',
    'BaseDistiller',
    'ClsDistiller',
    'FrozenClassifier',
    'FeatureProjector',
    'SteppingStones',
    'detach_head_input',
]
