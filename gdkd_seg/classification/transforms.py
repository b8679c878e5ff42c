"""Transforms of the classification pipelines (MMCV-style, on ``results['img']``, HxWx3 uint8 BGR)."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class TorchvisionTransform(BaseTransform):
    """Applies ``torchvision.transforms.v2.<name>(**kwargs)`` to the image, e.g.
    ``dict(type='TorchvisionTransform', name='RandomResizedCrop', size=224)`` or
    ``name='RandomCrop', size=32, padding=4`` (CIFAR). Geometric transforms only: the channel order
    stays BGR. Randomness comes from torch's generator, which MMEngine seeds per dataloader worker.
    """

    def __init__(self, name: str, **kwargs):
        from torchvision.transforms import v2
        if not hasattr(v2, name):
            raise ValueError(f'torchvision.transforms.v2 has no transform {name!r}')
        self.op = getattr(v2, name)(**kwargs)

    def transform(self, results: dict) -> dict:
        img = torch.from_numpy(np.ascontiguousarray(results['img'])).permute(2, 0, 1)
        out = self.op(img).permute(1, 2, 0).numpy()
        results['img'] = out
        results['img_shape'] = out.shape[:2]
        return results

    def __repr__(self):
        return f'{type(self).__name__}({self.op!r})'


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """``inputs``: the image as a CxHxW uint8 tensor; ``data_samples``: a ``BaseDataElement`` with
    ``gt_label`` (a 0-dim long tensor) and the ``meta_keys`` present in the results as metainfo."""

    def __init__(self, meta_keys=('img_path', 'ori_shape', 'img_shape', 'sample_idx')):
        self.meta_keys = meta_keys

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long)
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=sample)
