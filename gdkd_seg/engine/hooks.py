"""MMEngine hooks of the distillers."""

import json
import os.path as osp
import time

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmseg.registry import HOOKS

from ..utils.checkpoint import atomic_write


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@MMPRETRAIN_HOOKS.register_module()  # the classification configs run in mmpretrain's scope
@HOOKS.register_module()
class DistillWarmupHook(Hook):
    """Linear warm-up of every distillation loss over the first ``warmup_iters`` iterations (or
    ``warmup_epochs`` epochs of the train dataloader, as in DKD's classification recipes).

    The warm-up follows the iteration counter, so a resumed run continues where it stopped.
    """

    priority = 'NORMAL'

    def __init__(self, warmup_iters: int = 0, warmup_epochs: int = 0):
        if warmup_iters < 0 or warmup_epochs < 0:
            raise ValueError(f'warmup_iters and warmup_epochs must be >= 0, got {warmup_iters}, {warmup_epochs}')
        if warmup_iters and warmup_epochs:
            raise ValueError('Give the distillation warm-up as warmup_iters or warmup_epochs, not both')
        self.warmup_iters = warmup_iters
        self.warmup_epochs = warmup_epochs

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = _unwrap(runner.model)
        warmup_iters = self.warmup_iters or self.warmup_epochs * len(runner.train_dataloader)
        if warmup_iters:
            model.distill_scale = min(1.0, (runner.iter + 1) / warmup_iters)
        runner.message_hub.update_scalar('train/distill_scale', model.distill_scale)


@MMPRETRAIN_HOOKS.register_module()
@HOOKS.register_module()
class TeacherEvalHook(Hook):
    """When the distiller has ``val_teacher=True``, one evaluation of the teacher on the val set before
    training, logged (:func:`evaluate_teacher`)."""

    def before_train(self, runner):
        model = _unwrap(runner.model)
        if getattr(model, 'val_teacher', False) and runner.val_loop is not None:
            metrics = evaluate_teacher(runner)
            runner.logger.info('Teacher on the val set: ' + ', '.join(f'{k}: {v:.4f}' for k, v in metrics.items()))


def evaluate_teacher(runner):
    """Run the val loop's data and evaluator through the teacher, without the loop's hooks (so no
    'best' checkpoint or val log is written for the teacher)."""
    model = _unwrap(runner.model)
    loop = runner.val_loop
    bar = ProgressBar(len(loop.dataloader))
    for data_batch in loop.dataloader:
        data = model.data_preprocessor(data_batch, False)
        outputs = model.teacher.predict(data['inputs'], data['data_samples'])
        loop.evaluator.process(data_samples=outputs, data_batch=data_batch)
        bar.update()
    return loop.evaluator.evaluate(len(loop.dataloader.dataset))


@MMPRETRAIN_HOOKS.register_module()
@HOOKS.register_module()
class ValTimelineHook(Hook):
    """Writes ``<work_dir>/timeline.json`` after every validation: the iteration, the training time so far
    (wall-clock in seconds, data loading included, validation excluded) and the metrics, for time-to-accuracy
    curves. The file is rewritten atomically at each validation, so a killed run keeps its curve so far; the
    training time is saved in each checkpoint, so a resumed run continues the clock and the curve where the
    checkpoint left them (points after it are dropped)."""

    priority = 'LOW'

    def __init__(self, filename: str = 'timeline.json'):
        self.filename = filename
        self.points, self._offset, self._start, self._val_start, self._loaded = [], 0.0, None, None, None

    def _train_seconds(self) -> float:
        return self._offset + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def _path(self, runner) -> str:
        return osp.join(runner.work_dir, self.filename)

    def before_train(self, runner):
        loaded, self._loaded = self._loaded, None
        if loaded is not None and runner.iter > 0 and runner.iter == loaded.get('iter'):  # a resume, not load_from
            self._offset = float(loaded.get('train_seconds', 0.0))
            if osp.isfile(self._path(runner)):
                with open(self._path(runner)) as f:
                    self.points = [p for p in json.load(f) if p['iter'] <= runner.iter]
        self._start = time.perf_counter()

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint.setdefault('meta', {})['train_seconds'] = self._train_seconds()

    def after_load_checkpoint(self, runner, checkpoint):
        self._loaded = dict(checkpoint.get('meta', {}))

    def before_val(self, runner):
        self._val_start = time.perf_counter()

    def after_val_epoch(self, runner, metrics=None):
        if self._start is None:
            return
        seconds = self._train_seconds() - (time.perf_counter() - self._val_start)
        self.points = [p for p in self.points if p['iter'] < runner.iter]
        self.points.append(
            dict(iter=runner.iter, train_seconds=seconds, **{k: float(v) for k, v in (metrics or {}).items()})
        )
        if runner.rank == 0:
            atomic_write(json.dumps(self.points, indent=1).encode(), self._path(runner))

    def after_val(self, runner):
        if self._val_start is not None and self._start is not None:
            self._offset -= time.perf_counter() - self._val_start  # validation is not training time
        self._val_start = None
