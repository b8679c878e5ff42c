"""An MMEngine hook that draws the partition pictures of a few validation images during training."""

import os.path as osp
from typing import Optional, Sequence

import mmcv
import numpy as np
from mmengine.dist import is_main_process
from mmengine.fileio import get
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from .partitions import describe_settings, draw_partitions, gdkd_settings, partition_maps, predict_logits


@HOOKS.register_module()
class PartitionVisualizationHook(Hook):
    """Every ``interval`` training iterations, draw the partition pictures of fixed validation images.

    The pictures (see :func:`~gdkd_seg.visualization.draw_partitions`) go through the runner's visualizer
    as ``partitions_<image name>`` at step = iteration: files in ``<work_dir>/<timestamp>/vis_data/
    vis_image/`` with MMEngine's ``LocalVisBackend``, and TensorBoard images when the config's
    ``visualizer.vis_backends`` has ``TensorboardVisBackend``. On a ``SegDistiller`` all panels are drawn
    (teacher and student); on a plain segmentor, the teacher-side panels of that model.

    Args:
        interval (int): draw every ``interval`` iterations.
        num_images (int): how many validation images, spread evenly over the val set.
        indices (Sequence[int], optional): exactly which validation images (overrides ``num_images``).
        topk (int, optional): k of the partition; default the distiller's GDKD loss k (else 3).
        panel_width (int): width of one panel in pixels.
        backend_args (dict, optional): file backend arguments used to read the images.
    """

    priority = 'LOW'

    def __init__(
        self,
        interval: int = 2000,
        num_images: int = 3,
        indices: Optional[Sequence[int]] = None,
        topk: Optional[int] = None,
        panel_width: int = 480,
        backend_args: Optional[dict] = None,
    ):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if indices is None and num_images < 1:
            raise ValueError(f'num_images must be >= 1, got {num_images}')
        self.interval = interval
        self.num_images = num_images
        self.indices = None if indices is None else [int(i) for i in indices]
        self.topk = topk
        self.panel_width = panel_width
        self.backend_args = backend_args

    def before_train(self, runner):
        if runner.val_loop is None:
            raise ValueError(
                'PartitionVisualizationHook draws validation images: the config needs '
                'val_dataloader, val_cfg and val_evaluator'
            )
        self.dataset = runner.val_loop.dataloader.dataset
        size = len(self.dataset)
        if self.indices is None:
            self.indices = sorted(set(np.linspace(0, size - 1, min(self.num_images, size)).round().astype(int)))
        bad = [i for i in self.indices if not 0 <= i < size]
        if bad:
            raise ValueError(f'PartitionVisualizationHook indices {bad} are outside the val set of {size} images')
        self.settings = gdkd_settings(self._model(runner), self.topk)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None):
        if self.every_n_train_iters(runner, self.interval):
            self.draw(runner, step=runner.iter + 1)

    def draw(self, runner, step: int):
        """Draw every chosen image (on the main process) and hand it to the visualizer."""
        if not is_main_process():
            return
        model = self._model(runner)
        meta = self.dataset.metainfo
        for index in self.indices:
            item = self.dataset[index]
            teacher, student, samples = predict_logits(
                model, dict(inputs=[item['inputs']], data_samples=[item['data_samples']])
            )
            sample = samples[0]
            gt = sample.gt_sem_seg.data[0] if 'gt_sem_seg' in sample else None
            maps = partition_maps(
                teacher[0], gt=gt, student_logits=None if student is None else student[0], **self.settings
            )
            image = mmcv.imfrombytes(get(sample.img_path, backend_args=self.backend_args), channel_order='rgb')
            name = osp.splitext(osp.basename(sample.img_path))[0]
            picture = draw_partitions(
                image,
                maps,
                self.settings['topk'],
                meta.get('classes'),
                meta.get('palette'),
                title=f'{name}, iteration {step}; {describe_settings(self.settings)}',
                panel_width=self.panel_width,
            )
            runner.visualizer.add_image(f'partitions_{name}', picture, step=step)
        runner.logger.info(f'Partition pictures of {len(self.indices)} val images drawn at iteration {step}')

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model
