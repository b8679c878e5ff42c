from .recorders import ModuleOutputRecorder
from .seg_distiller import SegDistiller
from .teacher import FrozenTeacher, TeacherCheckpointError, check_state_dict_fits

__all__ = ['ModuleOutputRecorder', 'SegDistiller', 'FrozenTeacher', 'TeacherCheckpointError',
           'check_state_dict_fits']
