"""Train and test from a config: what ``tools/train.py`` and ``tools/test.py`` (and ``tools/demo.py``) run.

    from gdkd_seg.runner import train, test
    train('configs/gdkd_deeplabv3_r101_r18_cityscapes.py', {'model.teacher_checkpoint': 'teacher.pth'})
    metrics = test('configs/gdkd_deeplabv3_r101_r18_cityscapes.py', 'work_dirs/.../iter_40000.pth')

``options`` are ``--cfg-options`` as a dict of dotted keys (``{'model.distill_losses.decode.loss.topk': 1}``).
Both check the config against its data before any model is built (:mod:`gdkd_seg.datasets.checks`: folders,
samples, label values, class counts) and run MMEngine's Runner. What they add to it:

* a checkpoint given to ``test`` (or as ``load_from``) must fit the config's model exactly: a distiller
  checkpoint with a plain config, or the reverse, is named as such, and any missing, unexpected or
  mis-shaped key stops with the list; a local ``Pretrained`` init (e.g. an exported backbone) must hold a
  weight of the right shape for every weight of its module;
* training stops at the first non-finite loss (``NonFiniteLossHook``) and a resumed run continues with
  the saved random states (``RandomStateHook``), so that it ends with the weights of an uninterrupted run;
* with ``model.teacher_cache`` the train pipeline loads the cached teacher logits and carries them through
  its geometric transforms (:mod:`gdkd_seg.datasets.teacher_cache`);
* a crash, Ctrl-C or SIGTERM during training leaves a checkpoint to resume from (written atomically, with
  further signals ignored while it is written); ``--resume`` falls back to the previous checkpoint when
  the latest is truncated, and says so when there is none.
"""

import glob
import logging
import os
import os.path as osp
import re
import signal
import threading
import warnings
from contextlib import nullcontext
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, find_latest_checkpoint, load_state_dict
from mmseg.registry import RUNNERS

from .config import config_diff, load_config
from .datasets.checks import add_label_checks, check_data_roots, check_datasets, check_model_fits_data
from .datasets.teacher_cache import use_teacher_cache
from .engine.safety import NonFiniteLossError
from .utils import (
    CheckpointMismatchError,
    CheckpointReadError,
    check_state_dict_fits,
    checkpoint_is_complete,
    safe_torch_load,
    state_dict_of,
    work_dir_lock,
)


class ConfigChangedError(ValueError):
    """A resumed run's model config differs from the one its checkpoint was trained with."""


SAFETY_HOOKS = ('NonFiniteLossHook', 'RandomStateHook', 'DropStaleLossScalarsHook')


def prepare_cpu_distributed(cfg) -> None:
    """Make ``--launcher pytorch`` work on machines without CUDA (MMEngine 0.10.7 assumes GPUs).

    MMEngine's launcher calls ``torch.cuda.set_device`` unconditionally and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. We start the process group ourselves (the Runner then
    skips its own) with gloo, as NCCL needs GPUs, and wrap the model in DDP with ``device_ids=None``.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        print_log(f'No CUDA device: using the gloo backend instead of {backend}', logger='current')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False),
    )
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper


def build_runner(cfg: Config) -> Runner:
    """MMEngine's Runner (or the config's ``runner_type``), with the model checked against the data."""
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    check_model_fits_data(cfg, runner.model)
    return runner


def enable_amp(cfg: Config) -> None:
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current', level=logging.WARNING)
        return
    if cfg.optim_wrapper.type != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, got {cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def check_data(cfg: Config, dataloaders) -> None:
    """The data checks of :mod:`gdkd_seg.datasets.checks`, before any model is built; then every label map is
    checked as it loads."""
    check_data_roots(cfg, dataloaders)
    check_datasets(cfg, dataloaders)
    add_label_checks(cfg, dataloaders)


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def check_checkpoint_fits(model, checkpoint: str, config: str) -> dict:
    """The checkpoint's weights, if they fit ``model`` (built from ``config``) exactly; else a
    CheckpointMismatchError that says what does not fit and which config / checkpoint to use."""
    model = _unwrap(model)
    state = state_dict_of(CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu'))
    distiller_config = hasattr(model, 'student') and hasattr(model, 'teacher')
    distiller_checkpoint = any(k.startswith('student.') for k in state)
    if distiller_checkpoint and not distiller_config:
        raise CheckpointMismatchError(
            f'{checkpoint} is a distiller checkpoint (its weights are under "student."), but {config} is a plain '
            'model config. Use the distiller config it was trained with, or export the student first: '
            f'python tools/export_student.py DISTILLER_CONFIG {checkpoint} student.pth, then pass student.py '
            'and student.pth.'
        )
    if distiller_config and not distiller_checkpoint:
        raise CheckpointMismatchError(
            f'{checkpoint} is a plain model checkpoint (no "student." weights), but {config} is a distiller '
            'config. Pass the plain config it was trained or exported with (tools/export_student.py writes '
            'it beside the weights, e.g. student.py).'
        )
    check_state_dict_fits(
        model,
        state,
        checkpoint,
        f'the model of {config}',
        "Is this the checkpoint of this config's model (and of its data set's class count)?",
    )
    return state


def load_checkpoint_strictly(model, checkpoint: str, config: str) -> None:
    """Load ``checkpoint`` into ``model`` after :func:`check_checkpoint_fits`."""
    load_state_dict(_unwrap(model), check_checkpoint_fits(model, checkpoint, config), strict=True)


def _pretrained_inits(model):
    """``(module name, module, Pretrained init_cfg)`` of every module the model starts from a checkpoint."""
    for name, module in _unwrap(model).named_modules():
        init_cfg = getattr(module, 'init_cfg', None)
        for init in init_cfg if isinstance(init_cfg, list) else [init_cfg]:
            if isinstance(init, dict) and init.get('type') == 'Pretrained' and init.get('checkpoint'):
                yield name, module, init


def check_pretrained_fits(model, config: str) -> None:
    """Every local checkpoint of a ``Pretrained`` init must fit its module. MMEngine loads these non-strictly: a
    backbone of another width only logs a warning and the run trains from scratch under the pretrained config's
    name. Extra keys (an ImageNet head) are allowed; URLs are left to MMEngine, which downloads them."""
    for name, module, init in _pretrained_inits(model):
        path = init['checkpoint']
        if '://' in path:
            continue
        if not osp.isfile(path):
            raise FileNotFoundError(f'{config}: {name or "the model"} starts from {path}, which does not exist')
        state = state_dict_of(CheckpointLoader.load_checkpoint(path, map_location='cpu'))
        prefix = init.get('prefix')
        if prefix:
            prefix = prefix if prefix.endswith('.') else prefix + '.'
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        check_state_dict_fits(
            module,
            state,
            path,
            f'the {name or "model"} of {config} (its Pretrained init_cfg)',
            'Export the backbone of a network with this architecture and width (tools/export_backbone.py '
            '--check-config CONFIG checks it), or fix the init_cfg prefix.',
            allow_unexpected=True,
        )


def _checkpoint_step(path: str) -> int:
    match = re.search(r'(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else -1


def checkpoint_to_resume(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from: the latest one, or, when it is truncated, the newest
    complete one before it (with a warning naming both); None, with a warning, when there is none."""
    latest = find_latest_checkpoint(work_dir)
    if latest is None:
        warnings.warn(f'--resume: no checkpoint in {work_dir}, so training starts from scratch')
        return None
    if checkpoint_is_complete(latest):
        return latest
    candidates = sorted(
        (p for p in glob.glob(osp.join(work_dir, '*.pth')) if p != latest), key=_checkpoint_step, reverse=True
    )
    previous = next((p for p in candidates if checkpoint_is_complete(p)), None)
    if previous is None:
        raise CheckpointReadError(
            f'--resume: the latest checkpoint {latest} is truncated and {work_dir} holds no '
            'other complete checkpoint to continue from'
        )
    warnings.warn(
        f'--resume: the latest checkpoint {latest} is truncated (an interrupted write); continuing from '
        f'the previous one, {previous}'
    )
    return previous


def add_safety_hooks(cfg: Config) -> None:
    hooks = list(cfg.get('custom_hooks') or [])
    wrong = [h for h in hooks if not isinstance(h, dict)]
    if wrong:
        raise ValueError(
            f"custom_hooks holds {wrong}, not hook configs such as dict(type='ValTimelineHook'): --cfg-options "
            'turns dict(...) into a string, so add hooks in a config file (custom_hooks = [dict(type=...)])'
        )
    present = {h.get('type') for h in hooks}
    cfg.custom_hooks = hooks + [dict(type=name) for name in SAFETY_HOOKS if name not in present]


def train(
    config: str,
    options: Optional[dict] = None,
    work_dir: Optional[str] = None,
    resume: bool = False,
    amp: bool = False,
    launcher: str = 'none',
    resume_changed_config: bool = False,
) -> Runner:
    """Train ``config`` (a segmentor, a distiller or a classifier); returns the trained Runner. The run holds its
    work dir (:func:`work_dir_lock`); a resume whose model config differs from the checkpoint's is refused unless
    ``resume_changed_config``."""
    cfg = load_config(config, options, work_dir, launcher)
    if amp:
        enable_amp(cfg)
    with work_dir_lock(cfg.work_dir) if _is_rank_zero() else nullcontext():
        cfg.resume = resume
        if resume and cfg.get('load_from') is None:
            cfg.load_from = checkpoint_to_resume(cfg.work_dir)
            cfg.resume = cfg.load_from is not None
        if cfg.resume:
            check_resumed_model(cfg, cfg.load_from, resume_changed_config)
        check_data_roots(cfg, ('train_dataloader', 'val_dataloader'))
        if cfg.model.get('type') == 'SegDistiller' and cfg.model.get('teacher_cache'):
            use_teacher_cache(cfg, config)
        check_data(cfg, ('train_dataloader', 'val_dataloader'))
        add_safety_hooks(cfg)
        runner = build_runner(cfg)
        check_pretrained_fits(runner.model, config)
        if cfg.get('load_from') and not cfg.resume:
            check_checkpoint_fits(runner.model, cfg.load_from, config)
        train_with_recovery(runner)
    return runner


def _is_rank_zero() -> bool:
    """Rank 0 of a torchrun (before the process group exists), or a single process."""
    return int(os.environ.get('RANK', 0)) == 0


# Paths that may move without changing the model: the teacher's file is checked by content when it loads.
MOVABLE_MODEL_KEYS = ('teacher_checkpoint', 'teacher_cache')


def _model_identity(model_cfg) -> dict:
    model = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    return {k: v for k, v in model.items() if k not in MOVABLE_MODEL_KEYS}


def check_resumed_model(cfg: Config, checkpoint: str, allow_changes: bool = False) -> None:
    """The model config a resumed run continues with must be the one its checkpoint was trained with (MMEngine
    keeps the config in the checkpoint); a change (e.g. GDKD -> DKD) is refused with the changed keys, or, with
    ``allow_changes``, reported and the old losses' logged values dropped (``DropStaleLossScalarsHook``)."""
    meta = safe_torch_load(checkpoint, map_location='cpu', mmap=True).get('meta') or {}
    if 'cfg' not in meta:
        return  # not written by MMEngine's Runner: nothing to compare with
    try:
        saved = Config.fromstring(meta['cfg'], file_format='.py')
    except Exception as err:  # a config text this version cannot read back: say so, do not guess
        warnings.warn(f'--resume: could not read the config saved in {checkpoint} ({err}); its model is not compared')
        return
    changes = config_diff(_model_identity(saved.model), _model_identity(cfg.model), 'model')
    if not changes:
        return
    listed = '\n  '.join(changes[:20]) + (f'\n  ... and {len(changes) - 20} more' if len(changes) > 20 else '')
    if not allow_changes:
        raise ConfigChangedError(
            f'--resume: {checkpoint} was trained with another model config; changed:\n  {listed}\nResume with the '
            'config it was trained with, start a new run in another --work-dir, or pass --resume-changed-config '
            'to continue this one with the new settings'
        )
    warnings.warn(f'--resume-changed-config: continuing {checkpoint} with a changed model config:\n  {listed}')


def test(
    config: str,
    checkpoint: str,
    options: Optional[dict] = None,
    work_dir: Optional[str] = None,
    out: Optional[str] = None,
    show: bool = False,
    show_dir: Optional[str] = None,
    wait_time: float = 2,
    tta: bool = False,
    launcher: str = 'none',
) -> dict:
    """Evaluate ``checkpoint`` with ``config``'s test dataloader and evaluator; returns the metrics. A
    distiller checkpoint is tested through its student."""
    cfg = load_config(config, options, work_dir, launcher)
    if show or show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise RuntimeError('show/show_dir need default_hooks.visualization=dict(type="SegVisualizationHook")')
        hook['draw'] = True
        if show:
            hook.update(show=True, wait_time=wait_time)
        if show_dir:
            cfg.visualizer['save_dir'] = show_dir
    if tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if out is not None:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    if not osp.isfile(checkpoint):
        problem = 'is a directory, not a checkpoint file: pass a .pth in it' if osp.isdir(checkpoint) else 'not found'
        raise FileNotFoundError(f'Checkpoint {checkpoint} {problem}')
    check_data(cfg, ('test_dataloader',))
    cfg.load_from = None  # loaded strictly below, not by the Runner's lenient loader
    runner = build_runner(cfg)
    load_checkpoint_strictly(runner.model, checkpoint, config)
    return runner.test()


def save_emergency_checkpoint(runner: Runner) -> None:
    """Save the current state as ``iter_N.pth`` (``epoch_N.pth`` mid-epoch) and point ``last_checkpoint`` at
    it (for --resume). A periodic checkpoint of the same iteration is kept as it is, not rewritten; further
    SIGINT / SIGTERM are ignored while the file is written (torchrun and schedulers send several)."""
    by_epoch = not hasattr(runner.train_loop, 'dataloader_iterator')
    name = f'epoch_{runner.epoch}_iter_{runner.iter}.pth' if by_epoch else f'iter_{runner.iter}.pth'
    path = osp.join(runner.work_dir, name)
    periodic = osp.join(runner.work_dir, f'iter_{runner.iter}.pth')
    if not by_epoch and osp.isfile(periodic) and checkpoint_is_complete(periodic):
        print_log(
            f'Training stopped at iteration {runner.iter}, just after saving {name}; continue with --resume',
            logger='current',
        )
        return
    previous = (
        {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        if _in_main_thread()
        else {}
    )
    try:
        if not by_epoch:
            _prune_with_the_periodic_checkpoints(runner, name)
        meta = dict(epoch=runner.epoch, iter=runner.iter)  # where the loop resumes: the unfinished epoch
        runner.save_checkpoint(runner.work_dir, name, save_optimizer=True, save_param_scheduler=True, meta=meta)
        if runner.rank == 0:
            with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(path)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print_log(f'Training stopped at iteration {runner.iter}: saved {name}; continue with --resume', logger='current')


def _prune_with_the_periodic_checkpoints(runner: Runner, name: str) -> None:
    """List an emergency checkpoint with those the checkpoint hook keeps (in the checkpoint's message hub), so
    that the resumed run deletes it in turn under ``max_keep_ckpts`` rather than keeping it for ever."""
    hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
    if hook is None or hook.max_keep_ckpts <= 0 or hook.filename_tmpl.format(runner.iter) != name:
        return
    if osp.abspath(getattr(hook, 'out_dir', '')) != osp.abspath(runner.work_dir):
        return
    kept = runner.message_hub.get_info('keep_ckpt_ids', [])
    runner.message_hub.update_info('keep_ckpt_ids', [*kept, runner.iter])


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread() and os.name == 'posix'


def train_with_recovery(runner: Runner):
    """``runner.train()``; an exception, Ctrl-C or SIGTERM after training started leaves a checkpoint, except
    for a non-finite loss, whose weights are not worth keeping (the last periodic checkpoint is)."""

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt('SIGTERM')

    previous = signal.signal(signal.SIGTERM, on_sigterm) if _in_main_thread() else None
    try:
        return runner.train()
    except NonFiniteLossError:
        raise
    except BaseException:
        if (
            getattr(runner, '_train_loop', None) is not None
            and not isinstance(runner._train_loop, dict)
            and runner.iter > 0
        ):
            save_emergency_checkpoint(runner)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
