import os
import sys

import pytest

# Tests import their shared helpers (helpers.py) as a top-level module.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    from mmseg.utils import register_all_modules

    import gdkd_seg  # noqa: F401

    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def single_thread():
    """One intra-op thread for modules of tiny tensors, where more threads only add contention."""
    import torch

    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num_threads)


@pytest.fixture(autouse=True)
def mmseg_default_scope():
    """Every test starts in MMSeg's scope: a Runner of a classification config leaves mmpretrain's behind."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


@pytest.fixture
def teacher_ckpt(tmp_path):
    """A checkpoint of a randomly initialised tiny segmentor with an auxiliary head (3 classes), the teacher of
    the distiller tests."""
    from helpers import save_random_segmentor

    return save_random_segmentor(tmp_path / 'teacher.pth')
