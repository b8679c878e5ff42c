"""Nothing lost: a crash or interrupt leaves a checkpoint that --resume continues from, a resume never continues a
changed model silently, a work dir holds one run, and a failed checkpoint write names its file."""

import errno
import glob
import json
import os.path as osp
import socket
import subprocess

import pytest
import torch
from helpers import runner_cfg, tiny_segmentor, write_seg_folder
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from gdkd_seg.runner import ConfigChangedError, build_runner, train, train_with_recovery
from gdkd_seg.utils import WorkDirInUseError


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


def _distiller(teacher_ckpt, loss):
    return dict(
        type='SegDistiller',
        student=tiny_segmentor(3, width=8, aux=True),
        teacher=tiny_segmentor(3, width=16, aux=True),
        teacher_checkpoint=str(teacher_ckpt),
        distill_losses=dict(decode=dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=loss)),
    )


def _config(tmp_path, teacher_ckpt, name, loss, max_iters):
    root = write_seg_folder(str(tmp_path / 'data'))
    cfg = runner_cfg(tmp_path / 'work', root, _distiller(teacher_ckpt, loss), max_iters=max_iters, val=False)
    cfg.custom_imports = dict(imports=['gdkd_seg'])
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def _logged_keys(work_dir):
    rows = [
        json.loads(line)
        for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
        for line in open(path)
    ]
    return {row['step']: set(row) for row in rows if 'loss' in row}


def test_a_resume_with_another_loss_is_refused_or_continues_without_the_old_losses(tmp_path, teacher_ckpt):
    gdkd = _config(tmp_path, teacher_ckpt, 'gdkd', dict(type='GDKDLoss', topk=1), max_iters=2)
    train(gdkd)
    dkd = _config(tmp_path, teacher_ckpt, 'dkd', dict(type='DKDLoss'), max_iters=4)
    with pytest.raises(ConfigChangedError, match=r"model\.distill_losses\.decode\.loss\.type: 'GDKDLoss' -> 'DKDLoss'"):
        train(dkd, resume=True)
    with pytest.warns(UserWarning, match='continuing .*iter_2.pth with a changed model config'):
        resumed = train(dkd, resume=True, resume_changed_config=True)
    assert resumed.iter == 4
    logged = _logged_keys(str(tmp_path / 'work'))
    assert 'distill.decode.loss_gdkd' in logged[2]
    assert {'distill.decode.loss_dkd'} <= logged[4] and not any('gdkd' in key for key in logged[4])


def test_a_second_run_into_a_work_dir_in_use_is_refused(tmp_path, teacher_ckpt):
    config = _config(tmp_path, teacher_ckpt, 'gdkd', dict(type='GDKDLoss', topk=1), max_iters=2)
    other = subprocess.Popen(['sleep', '60'])
    try:
        lock = tmp_path / 'work' / '.lock'
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(json.dumps(dict(pid=other.pid, host=socket.gethostname(), started='now')))
        with pytest.raises(WorkDirInUseError, match=rf'work is in use by another training run \(pid {other.pid} '):
            train(config)
        assert not glob.glob(str(tmp_path / 'work' / '*.pth'))
    finally:
        other.kill()
        other.wait()
    # the owner is gone: its lock is taken over, and released when the run ends
    with pytest.warns(UserWarning, match='taking over the lock of a run that has ended'):
        train(config)
    assert osp.isfile(tmp_path / 'work' / 'iter_2.pth') and not lock.exists()


def test_a_failed_checkpoint_write_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    root = write_seg_folder(str(tmp_path / 'data'))
    runner = build_runner(runner_cfg(tmp_path / 'work', root, tiny_segmentor(), max_iters=2, val=False))
    runner.train()
    previous = (tmp_path / 'work' / 'iter_2.pth').read_bytes()

    def disk_full(fd):
        raise OSError(errno.EFBIG, 'File too large')

    monkeypatch.setattr('gdkd_seg.utils.checkpoint.os.fsync', disk_full)
    with pytest.raises(
        OSError, match=r'Could not write .*iter_2\.pth .*File too large; the previous .*iter_2\.pth is intact'
    ) as err:
        runner.save_checkpoint(str(tmp_path / 'work'), 'iter_2.pth')
    assert err.value.errno == errno.EFBIG
    assert (tmp_path / 'work' / 'iter_2.pth').read_bytes() == previous
    with pytest.raises(OSError, match=r'iter_3\.pth .*no .*iter_3\.pth was written'):
        runner.save_checkpoint(str(tmp_path / 'work'), 'iter_3.pth')
    assert not glob.glob(str(tmp_path / 'work' / '*.tmp-*'))


def test_a_hook_written_as_text_is_refused_by_name(tmp_path):
    from gdkd_seg.runner import add_safety_hooks

    cfg = runner_cfg(tmp_path / 'work', str(tmp_path), tiny_segmentor(), val=False)
    cfg.custom_hooks = ["dict(type='ValTimelineHook')"]  # what --cfg-options makes of a dict
    with pytest.raises(ValueError, match=r"custom_hooks holds \[\"dict\(type='ValTimelineHook'\)\"\].*config file"):
        add_safety_hooks(cfg)
