"""The environment: OpenMMLab on current torch, registration, Runner train/resume, safe loading."""

import collections
import os

import pytest
import torch
from helpers import runner_cfg, tiny_segmentor, write_seg_folder
from mmengine.runner import Runner


def test_stack_imports_and_registration():
    import mmcv.ops  # noqa: F401  (compiled ops, which mmseg needs at import time)
    import mmseg.models  # noqa: F401
    from mmcv.ops import nms
    from mmseg.registry import MODELS

    import gdkd_seg

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    for name in ('GDKDLoss', 'GDKD3Loss', 'DKDLoss', 'KDLoss', 'DISTLoss', 'CWDLoss'):
        assert MODELS.get(name) is not None, name
    assert gdkd_seg.__version__


def _state(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_runner_trains_saves_and_resumes(tmp_path):
    root = write_seg_folder(str(tmp_path / 'data'))
    first = Runner.from_cfg(runner_cfg(tmp_path / 'a', root, tiny_segmentor(), max_iters=2))
    first.train()
    ckpt = tmp_path / 'a' / 'iter_2.pth'
    assert ckpt.is_file()
    trained = _state(first)
    momentum = first.optim_wrapper.optimizer.state_dict()['state']

    cfg = runner_cfg(tmp_path / 'b', root, tiny_segmentor(), max_iters=4)
    cfg.update(resume=True, load_from=str(ckpt))
    second = Runner.from_cfg(cfg)
    second.load_or_resume()
    assert second.iter == 2
    for key, value in trained.items():
        assert torch.equal(second.model.state_dict()[key], value), key
    resumed = second.optim_wrapper.optimizer.state_dict()['state']
    assert resumed.keys() == momentum.keys() and len(resumed) > 0
    for idx in momentum:
        assert torch.equal(resumed[idx]['momentum_buffer'], momentum[idx]['momentum_buffer'])
    second.train()
    assert second.iter == 4


class _RunsCode:
    def __reduce__(self):
        return (os.system, ('echo this should never run',))


def test_safe_loader_refuses_code_in_checkpoints(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint

    from gdkd_seg.utils import UnsafeCheckpointError, safe_torch_load

    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'payload': _RunsCode()}, path)
    for load in (safe_torch_load, _load_checkpoint):
        with pytest.raises(UnsafeCheckpointError, match=r'posix\.system|os\.system|arbitrary code'):
            load(str(path))


def test_safe_loader_refuses_getattr_outside_history_buffer(tmp_path):
    from gdkd_seg.utils import UnsafeCheckpointError, safe_torch_load

    class _GetsAttr:
        def __reduce__(self):
            return (getattr, (collections.OrderedDict, 'fromkeys'))

    path = tmp_path / 'getattr.pth'
    torch.save({'x': _GetsAttr()}, path)
    with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer'):
        safe_torch_load(str(path))


def test_missing_local_checkpoint_is_named(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader

    with pytest.raises(FileNotFoundError, match='nope.pth'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))


def test_unreachable_url_says_to_use_a_local_file(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader

    from gdkd_seg.utils import CheckpointDownloadError

    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(CheckpointDownloadError, match=r'http://127\.0\.0\.1:9/teacher\.pth.*local path'):
        CheckpointLoader.load_checkpoint('http://127.0.0.1:9/teacher.pth')


def test_truncated_checkpoint_is_named_through_mmengines_loader(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader

    from gdkd_seg.utils import CheckpointReadError

    path = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointReadError, match=r'cut\.pth: it is truncated'):
        CheckpointLoader.load_checkpoint(str(path))


def test_mmcls_model_zoo_names_go_through_the_safe_loader(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader

    from gdkd_seg.utils import CheckpointDownloadError

    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(
        'mmengine.runner.checkpoint.get_mmcls_models', lambda: {'mobilenet_v2': 'http://127.0.0.1:9/mobilenet_v2.pth'}
    )
    with pytest.raises(CheckpointDownloadError, match=r'mobilenet_v2\.pth.*local path'):
        CheckpointLoader.load_checkpoint('mmcls://mobilenet_v2')
