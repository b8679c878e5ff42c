"""Hooks that keep a run honest: training stops at the first non-finite loss, and a resumed run continues with
the random state it stopped with (``gdkd_seg.runner.train`` adds both to every config)."""

import math
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmseg.registry import HOOKS
from torch.utils.data.dataloader import _DatasetKind, _SingleProcessDataLoaderIter

from ..models.distiller_base import term_key


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or inf."""


def _value(value) -> float:
    return float(value.detach().float().mean()) if torch.is_tensor(value) else float(value)


@MMPRETRAIN_HOOKS.register_module()
@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first iteration whose loss (or any logged loss term) is NaN or inf, naming the
    terms and the iteration.

    It runs before the checkpoint hook of that iteration, so the last checkpoint written is the last good
    one; :func:`gdkd_seg.runner.train_with_recovery` saves no emergency checkpoint for this error.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None):
        bad = {name: _value(v) for name, v in (outputs or {}).items() if not math.isfinite(_value(v))}
        if not bad:
            return
        terms = [name for name in bad if name != 'loss'] or list(bad)
        raise NonFiniteLossError(
            f'Training stopped at iteration {runner.iter + 1}: {", ".join(f"{n} = {bad[n]}" for n in terms)}. '
            'No checkpoint was written for this iteration; the last one in the work dir is the last good one. '
            'Check the data (tools/test.py checks the labels), the teacher checkpoint, the learning rate and '
            'the loss weights, then --resume.'
        )


def random_states() -> dict:
    """This process's torch (CPU and CUDA), numpy and Python random states."""
    states = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict) -> None:
    torch.set_rng_state(states['torch'])
    np.random.set_state(states['numpy'])
    random.setstate(states['python'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


def _skip_without_loading(iterator) -> bool:
    """Draw the indices of the next batch of a loader without workers, without loading the batch; False where
    the batch must be loaded instead.

    Skipping the load changes nothing there: the random numbers its augmentation would draw are reset when the
    saved states are restored. Workers draw their own, which only loading the trained batches replays; an
    iterable dataset yields its data without indices; and at an epoch's end the loader must start the next one.
    """
    inner = getattr(iterator, '_iterator', None)  # mmengine's infinite iterator wraps torch's
    if not isinstance(inner, _SingleProcessDataLoaderIter) or inner._dataset_kind != _DatasetKind.Map:
        return False
    try:
        inner._next_index()
    except StopIteration:
        return False
    inner._num_yielded += 1
    return True


class _RestoreAfterAdvance:
    """Stands in for the train loop's dataloader iterator while it skips the ``skip`` trained batches of a
    resumed run: the next batch is loaded with the saved random states, as the interrupted run loaded it.
    Skipped batches are not loaded where that gives the same run (:func:`_skip_without_loading`), so a run
    resumed late in a long schedule does not spend minutes loading data it throws away."""

    def __init__(self, loop, skip: int, states: dict):
        self.loop, self.iterator, self.skip, self.states = loop, loop.dataloader_iterator, skip, states

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
            return None if _skip_without_loading(self.iterator) else next(self.iterator)
        set_random_states(self.states)
        self.loop.dataloader_iterator = self.iterator
        return next(self.iterator)


@MMPRETRAIN_HOOKS.register_module()
@HOOKS.register_module()
class RandomStateHook(Hook):
    """Exact resume: save every rank's torch, numpy and Python random states with each checkpoint and restore
    them when a run resumes from it, so that data augmentation, dropout and every other random op continue
    exactly where the interrupted run stopped.

    The states saved are those of every rank at the end of the last finished iteration (an emergency
    checkpoint written mid-iteration saves them too). Validation runs between an iteration and the next one's batch,
    so it is made neutral: the states are put back after it. An iteration-based resume restores the states after the
    train loop has advanced the dataloader past the trained batches (which draws random numbers for their
    augmentation), right before the next batch is loaded; an epoch-based one before its first epoch.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._end_of_iter = None  # the states after the last finished iteration
        self._before_val = None
        self._pending = None  # (iteration, states) of a checkpoint just loaded

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # Gathered every iteration (a few KB): checkpoints are written by rank 0 alone, at iterations the
        # other ranks do not know, so the states of all ranks must be at hand on rank 0 at any time.
        _, world_size = get_dist_info()
        self._end_of_iter = all_gather_object(random_states()) if world_size > 1 else [random_states()]

    def before_val(self, runner) -> None:
        self._before_val = random_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_random_states(self._before_val)
            self._before_val = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:  # on rank 0 only
        checkpoint['random_states'] = self._end_of_iter or [random_states()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('random_states')
        rank, world_size = get_dist_info()
        self._pending = None
        if saved is None:
            return
        if len(saved) != world_size:
            runner.logger.warning(
                f'The checkpoint holds the random states of {len(saved)} processes, this run '
                f'has {world_size}: random ops continue from fresh states'
            )
            return
        self._pending = (checkpoint.get('meta', {}).get('iter'), saved[rank])

    def before_train(self, runner) -> None:
        if self._pending is None:
            return
        iteration, states = self._pending
        if iteration != runner.iter:  # a load_from for fine-tuning: it starts at 0, from fresh states
            self._pending = None
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # iteration-based: it advances the iterator first
            loop.dataloader_iterator = _RestoreAfterAdvance(loop, runner.iter, states)
            self._pending = None

    def before_train_epoch(self, runner) -> None:
        if self._pending is not None:
            set_random_states(self._pending[1])
            self._pending = None


@MMPRETRAIN_HOOKS.register_module()
@HOOKS.register_module()
class DropStaleLossScalarsHook(Hook):
    """A resumed run starts with the scalars its checkpoint's run logged. Those of distillation losses this model
    no longer computes (a resume with a changed config) would be logged at their last value for the rest of the
    run: they are dropped before training starts."""

    priority = 'VERY_LOW'  # after the checkpoint is loaded

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        current = [
            (f'train/distill.{name}.{loss.loss_name}', 'train/' + term_key(name, loss, 'term')[: -len('term')])
            for name, loss in getattr(model, 'distill_losses', {}).items()
        ]
        scalars = runner.message_hub.log_scalars
        stale = [
            key
            for key in scalars
            if key.startswith('train/distill.')
            and not any(key == total or key.startswith(terms) for total, terms in current)
        ]
        for key in stale:
            del scalars[key]
        if stale:
            runner.logger.warning(f'Dropped the logged values of losses this model no longer computes: {stale}')
