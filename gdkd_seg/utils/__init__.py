from .checkpoint import (
    AtomicLocalBackend,
    CheckpointDownloadError,
    CheckpointMismatchError,
    CheckpointReadError,
    UnsafeCheckpointError,
    atomic_write,
    check_state_dict_fits,
    checkpoint_is_complete,
    file_sha256,
    install_safe_checkpoint_loaders,
    safe_torch_load,
    state_dict_of,
)
from .workdir import WorkDirInUseError, work_dir_lock

install_safe_checkpoint_loaders()

__all__ = [
    'AtomicLocalBackend',
    'CheckpointDownloadError',
    'CheckpointMismatchError',
    'CheckpointReadError',
    'UnsafeCheckpointError',
    'atomic_write',
    'check_state_dict_fits',
    'checkpoint_is_complete',
    'file_sha256',
    'install_safe_checkpoint_loaders',
    'safe_torch_load',
    'state_dict_of',
    'WorkDirInUseError',
    'work_dir_lock',
]
