from .recorders import ModuleOutputRecorder
from .seg_distiller import SegDistiller, resolve_model_cfg
from .teacher import FrozenTeacher, TeacherCheckpointError, check_state_dict_fits

__all__ = ['ModuleOutputRecorder', 'SegDistiller', 'resolve_model_cfg', 'FrozenTeacher', 'TeacherCheckpointError',
           'check_state_dict_fits']
