"""Partition pictures of images on disk: the library side of ``tools/visualize_partitions.py`` (and of
the demo's pictures)."""

import inspect
import os
import os.path as osp
import sys
from typing import List, Optional

import mmcv
import torch
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
from mmengine.utils import ProgressBar, scandir
from mmseg.apis import init_model
from mmseg.registry import DATASETS, MODELS, TRANSFORMS

from ..config import load_config
from ..datasets.checks import leaf_datasets
from .partitions import describe_settings, draw_partitions, gdkd_settings, partition_maps, predict_logits

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


# ----------------------------------------------------------------------------
# model and dataset settings
# ----------------------------------------------------------------------------
def build_model(cfg, checkpoint, device):
    """The distiller (student from ``checkpoint``, teacher from its own checkpoint) or the plain segmentor."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {checkpoint}')
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.') :]: v for k, v in state.items()}
    if cfg.model.get('type') == 'SegDistiller':
        model = MODELS.build(cfg.model)
        distiller_ckpt = any(k.startswith('student.') for k in state)
        # a plain student checkpoint (e.g. from tools/export_student.py) goes into the student
        _load(model if distiller_ckpt else model.student, state, checkpoint, cfg)
        model.teacher.load()
    else:
        model = init_model(cfg, None, device='cpu')
        _load(model, state, checkpoint, cfg)
    return model.to(device).eval(), ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}


def _load(model, state, checkpoint, cfg):
    try:
        load_state_dict(model, state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(
            f'{checkpoint} does not fit the model of {cfg.filename} ({err}). A distiller '
            'checkpoint needs its distiller config; a plain MMSeg checkpoint its own config.'
        ) from err


def dataset_cfg(cfg) -> dict:
    for key in ('test_dataloader', 'val_dataloader'):
        if cfg.get(key):
            return dict(leaf_datasets(cfg[key]['dataset'])[0])
    return {}


def dataset_setting(dataset: dict, key: str, fallback):
    """A dataset argument from the config, else the dataset class's default, else ``fallback``."""
    if key in dataset:
        return dataset[key]
    cls = DATASETS.get(dataset.get('type', 'BaseSegDataset'))
    param = inspect.signature(cls.__init__).parameters.get(key) if cls else None
    return fallback if param is None or param.default is inspect.Parameter.empty else param.default


def dataset_meta(dataset: dict, checkpoint_meta: dict) -> dict:
    """Class names and palette: the checkpoint's (what it was trained on), else the config dataset's."""
    if checkpoint_meta.get('dataset_meta'):
        return dict(checkpoint_meta['dataset_meta'])
    cls = DATASETS.get(dataset.get('type', 'BaseSegDataset'))
    meta = dict(getattr(cls, 'METAINFO', {}) or {})
    meta.update(dataset.get('metainfo') or {})
    return meta


def pipelines(cfg, dataset: dict):
    """(image pipeline without annotations, the annotation loading transform)."""
    steps = cfg.get('test_pipeline') or dataset.get('pipeline')
    if not steps:
        raise ValueError(f'{cfg.filename} has no test_pipeline (nor test_dataloader.dataset.pipeline)')
    image_steps = [dict(t) for t in steps if t.get('type') != 'LoadAnnotations']
    ann_step = next((dict(t) for t in steps if t.get('type') == 'LoadAnnotations'), dict(type='LoadAnnotations'))
    return Compose(image_steps), TRANSFORMS.build(ann_step)


# ----------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------
def find_images(img, ann, img_suffix, seg_map_suffix):
    """``[(image, annotation or None, relative output stem)]``."""
    if osp.isfile(img):
        if ann is not None and not osp.isdir(ann) and not osp.isfile(ann):
            raise FileNotFoundError(f'--ann {ann} does not exist')
        found = [(img, osp.dirname(img), osp.basename(img))]
    elif osp.isdir(img):
        names = sorted(f for f in scandir(img, IMAGE_EXTENSIONS, recursive=True))
        if not names:
            raise FileNotFoundError(f'--img {img} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
        if ann is not None and not osp.isdir(ann):
            raise ValueError(f'--img {img} is a folder, so --ann must be a folder too, got {ann}')
        found = [(osp.join(img, n), img, n) for n in names]
    else:
        raise FileNotFoundError(f'--img {img} does not exist')

    items = []
    for path, root, rel in found:
        name = osp.basename(rel)
        stem = name[: -len(img_suffix)] if name.endswith(img_suffix) else osp.splitext(name)[0]
        rel_stem = osp.join(osp.dirname(rel), stem)
        ann_path = None
        if ann is not None and osp.isfile(ann):
            ann_path = ann
        elif ann is not None:
            tried = [
                osp.join(ann, rel_stem + seg_map_suffix),
                osp.join(ann, stem + seg_map_suffix),
                osp.join(ann, rel_stem + '.png'),
            ]
            ann_path = next((p for p in tried if osp.isfile(p)), None)
            if ann_path is None:
                raise FileNotFoundError(
                    f'no annotation for {path}; tried {tried} (seg_map_suffix '
                    f"{seg_map_suffix!r} from the config's dataset)"
                )
        items.append((path, ann_path, rel_stem))
    return items


def load_annotation(ann_transform, path, reduce_zero_label, image_shape):
    gt = ann_transform(dict(seg_map_path=path, reduce_zero_label=reduce_zero_label, seg_fields=[]))['gt_seg_map']
    if gt.shape[:2] != tuple(image_shape[:2]):
        raise ValueError(
            f'annotation {path} is {gt.shape[1]}x{gt.shape[0]} but its image is '
            f'{image_shape[1]}x{image_shape[0]}: is --ann the matching annotation?'
        )
    return torch.from_numpy(gt.astype('int64'))


# ----------------------------------------------------------------------------
def visualize_partitions(
    config: str,
    checkpoint: str,
    img: str,
    out: str,
    ann: Optional[str] = None,
    topk: Optional[int] = None,
    device: Optional[str] = None,
    panel_width: int = 480,
    options: Optional[dict] = None,
) -> List[str]:
    """Draw one partition picture per image of ``img`` (a file, or a folder searched recursively) into
    ``out``; returns the paths written.

    ``config`` is a distiller config (teacher from ``model.teacher`` + ``model.teacher_checkpoint``,
    student from ``checkpoint``; a plain student checkpoint from ``tools/export_student.py`` works too) or
    a plain MMSeg config with its ``checkpoint`` (that model is the teacher; the student-side panels are
    left out). Images go through the config's test pipeline and data preprocessor; the maps are computed
    on the logits MMSeg's ``predict`` returns. With ``ann`` (an annotation file, or a folder laid out like
    the image folder, named with the dataset's ``seg_map_suffix``) the ground-truth panels are drawn too.
    """
    device = device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    cfg = load_config(config, options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = dataset_cfg(cfg)
    img_suffix = dataset_setting(dataset, 'img_suffix', '.png')
    seg_map_suffix = dataset_setting(dataset, 'seg_map_suffix', '.png')
    reduce_zero_label = dataset_setting(dataset, 'reduce_zero_label', False)
    items = find_images(img, ann, img_suffix, seg_map_suffix)

    model, ckpt_meta = build_model(cfg, checkpoint, device)
    settings = gdkd_settings(model, topk)
    meta = dataset_meta(dataset, ckpt_meta)
    image_pipeline, ann_transform = pipelines(cfg, dataset)
    side = describe_settings(settings) + ('' if hasattr(model, 'teacher') else '; plain model: teacher side only')

    written = []
    progress = ProgressBar(len(items), file=sys.stdout)  # follows redirect_stdout (tools/demo.py)
    for path, ann_path, rel_stem in items:
        image = mmcv.imread(path, channel_order='rgb')
        gt = None if ann_path is None else load_annotation(ann_transform, ann_path, reduce_zero_label, image.shape)
        data = image_pipeline(dict(img_path=path))
        picture = _picture(model, data, image, f'{osp.basename(path)}; {side}', gt, settings, meta, panel_width)
        written.append(osp.join(out, rel_stem + '_partitions.png'))
        os.makedirs(osp.dirname(written[-1]), exist_ok=True)
        mmcv.imwrite(mmcv.rgb2bgr(picture), written[-1])
        progress.update()
    print(f'\n{len(written)} partition pictures written to {out}')
    return written


def _picture(model, data, image, title, gt, settings, meta, panel_width):
    """The partition picture of ``image`` (RGB; ``data``: it through the test pipeline)."""
    teacher, student, _ = predict_logits(model, dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
    student = None if student is None else student[0].cpu()
    maps = partition_maps(teacher[0].cpu(), gt=gt, student_logits=student, **settings)
    return draw_partitions(
        image, maps, settings['topk'], meta.get('classes'), meta.get('palette'), title=title, panel_width=panel_width
    )
