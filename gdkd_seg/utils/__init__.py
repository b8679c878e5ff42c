from .checkpoint import (CheckpointDownloadError, UnsafeCheckpointError, install_safe_checkpoint_loaders,
                         load_from_http, load_from_local, safe_torch_load)

install_safe_checkpoint_loaders()

__all__ = ['CheckpointDownloadError', 'UnsafeCheckpointError', 'install_safe_checkpoint_loaders',
           'load_from_http', 'load_from_local', 'safe_torch_load']
