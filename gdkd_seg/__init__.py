"""gdkd-seg. Importing the package registers every module into MMSegmentation's registries.

Configs therefore say ``custom_imports=dict(imports=['gdkd_seg'])`` with ``default_scope='mmseg'``.
"""

from . import utils  # noqa: F401  (first: routes MMEngine's checkpoint loading through the safe loader)

# isort: split
from . import classification, datasets, engine, losses, models, visualization  # noqa: F401

__version__ = '0.1.0'
