"""A crash or interrupt during training leaves a checkpoint that --resume continues from."""

import os.path as osp

import pytest
import torch
from helpers import runner_cfg, tiny_segmentor, write_seg_folder
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from gdkd_seg.runner import build_runner, train_with_recovery


@HOOKS.register_module()
class _FailAtIter(Hook):
    def __init__(self, at, error):
        self.at, self.error = at, error

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:  # runner.iter counts finished iterations after this hook
            raise {'crash': RuntimeError('simulated crash'), 'kill': KeyboardInterrupt('SIGTERM')}[self.error]


@pytest.mark.parametrize('error, exc', [('crash', RuntimeError), ('kill', KeyboardInterrupt)])
def test_interrupted_training_saves_a_resumable_checkpoint(tmp_path, error, exc):
    root = write_seg_folder(str(tmp_path / 'data'))
    work = tmp_path / 'work'
    cfg = runner_cfg(work, root, tiny_segmentor(), max_iters=10, val=False)
    cfg.default_hooks.checkpoint.interval = 100  # no regular checkpoint before the failure
    cfg.custom_hooks = [dict(type='_FailAtIter', at=3, error=error)]
    runner = build_runner(cfg)
    with pytest.raises(exc):
        train_with_recovery(runner)
    saved = osp.join(work, 'iter_2.pth')
    assert osp.isfile(saved)
    assert open(work / 'last_checkpoint').read().strip() == saved

    cfg = runner_cfg(work, root, tiny_segmentor(), max_iters=4, val=False)
    cfg.resume = True
    resumed = build_runner(cfg)
    resumed.load_or_resume()
    assert resumed.iter == 2
    state = torch.load(saved, weights_only=False)['state_dict']
    assert all(torch.equal(resumed.model.state_dict()[k], v) for k, v in state.items())
