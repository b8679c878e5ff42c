import os
import sys

# Tests import their shared helpers (toy.py) as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    from mmseg.utils import register_all_modules

    import gdkd_seg  # noqa: F401
    register_all_modules(init_default_scope=True)
