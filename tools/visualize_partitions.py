"""Draw GDKD's per-pixel top-k partitions of a teacher (and the GDKD loss against a student) on images.

    python tools/visualize_partitions.py CONFIG CHECKPOINT --img PATH_OR_DIR --out DIR
        [--ann PATH_OR_DIR] [--topk K] [--device cpu] [--panel-width 480] [--cfg-options ...]

CONFIG is a distiller config (teacher from ``model.teacher`` + ``model.teacher_checkpoint``, student from
CHECKPOINT; a plain student checkpoint from tools/export_student.py works too) or a plain MMSeg config with
its CHECKPOINT (that model is the teacher; the student-side panels are left out). Images go through the
config's test pipeline and data preprocessor; the maps are computed on the logits MMSeg's ``predict``
returns (the decode head's output resized to the image). With ``--ann`` (an annotation file, or a folder
laid out like the image folder, named with the dataset's ``seg_map_suffix``) the ground-truth panels are
drawn too. One PNG per image is written to DIR.
"""
import argparse
import inspect
import os
import os.path as osp
import sys

import mmcv
import torch
from mmengine.config import DictAction
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
from mmengine.utils import ProgressBar, scandir

import gdkd_seg  # noqa: F401
from gdkd_seg.apis import _datasets, load_config
from gdkd_seg.visualization import describe_settings, draw_partitions, gdkd_settings, partition_maps, predict_logits
from mmseg.apis import init_model
from mmseg.registry import DATASETS, MODELS, TRANSFORMS

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='distiller config, or a plain MMSeg config (teacher-side panels only)')
    parser.add_argument('checkpoint', help='distiller (or exported student) checkpoint; with a plain config, '
                                           'that model\'s checkpoint')
    parser.add_argument('--img', required=True, help='an image, or a folder searched recursively')
    parser.add_argument('--out', required=True, help='folder for the PNGs')
    parser.add_argument('--ann', help='annotation file (with one --img) or folder mirroring the image folder')
    parser.add_argument('--topk', type=int, help="k of the teacher's top group (default: the config's GDKD k, "
                                                 'else 3)')
    parser.add_argument('--device', default='cuda:0' if torch.cuda.is_available() else 'cpu',
                        help='e.g. cpu or cuda:0 (default: cuda:0 when available)')
    parser.add_argument('--panel-width', type=int, default=480, help='width of one panel in pixels')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser.parse_args(argv)


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
        state = {k[len('module.'):]: v for k, v in state.items()}
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
        raise RuntimeError(f'{checkpoint} does not fit the model of {cfg.filename} ({err}). A distiller '
                           'checkpoint needs its distiller config; a plain MMSeg checkpoint its own config.'
                           ) from err


def dataset_cfg(cfg) -> dict:
    for key in ('test_dataloader', 'val_dataloader'):
        if cfg.get(key):
            return dict(_datasets(cfg[key]['dataset'])[0])
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
        stem = name[:-len(img_suffix)] if name.endswith(img_suffix) else osp.splitext(name)[0]
        rel_stem = osp.join(osp.dirname(rel), stem)
        ann_path = None
        if ann is not None and osp.isfile(ann):
            ann_path = ann
        elif ann is not None:
            tried = [osp.join(ann, rel_stem + seg_map_suffix), osp.join(ann, stem + seg_map_suffix),
                     osp.join(ann, rel_stem + '.png')]
            ann_path = next((p for p in tried if osp.isfile(p)), None)
            if ann_path is None:
                raise FileNotFoundError(f'no annotation for {path}; tried {tried} (seg_map_suffix '
                                        f'{seg_map_suffix!r} from the config\'s dataset)')
        items.append((path, ann_path, rel_stem))
    return items


def load_annotation(ann_transform, path, reduce_zero_label, image_shape):
    gt = ann_transform(dict(seg_map_path=path, reduce_zero_label=reduce_zero_label, seg_fields=[]))['gt_seg_map']
    if gt.shape[:2] != tuple(image_shape[:2]):
        raise ValueError(f'annotation {path} is {gt.shape[1]}x{gt.shape[0]} but its image is '
                         f'{image_shape[1]}x{image_shape[0]}: is --ann the matching annotation?')
    return torch.from_numpy(gt.astype('int64'))


# ----------------------------------------------------------------------------
def visualize(args):
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = dataset_cfg(cfg)
    img_suffix = dataset_setting(dataset, 'img_suffix', '.png')
    seg_map_suffix = dataset_setting(dataset, 'seg_map_suffix', '.png')
    reduce_zero_label = dataset_setting(dataset, 'reduce_zero_label', False)
    items = find_images(args.img, args.ann, img_suffix, seg_map_suffix)

    model, ckpt_meta = build_model(cfg, args.checkpoint, args.device)
    settings = gdkd_settings(model, args.topk)
    meta = dataset_meta(dataset, ckpt_meta)
    image_pipeline, ann_transform = pipelines(cfg, dataset)
    side = describe_settings(settings) + ('' if hasattr(model, 'teacher') else '; plain model: teacher side only')

    written = []
    progress = ProgressBar(len(items), file=sys.stdout)  # follows redirect_stdout (tools/demo.py)
    for path, ann_path, rel_stem in items:
        data = image_pipeline(dict(img_path=path))
        teacher, student, _ = predict_logits(model, dict(inputs=[data['inputs']],
                                                         data_samples=[data['data_samples']]))
        image = mmcv.imread(path, channel_order='rgb')
        gt = None if ann_path is None else load_annotation(ann_transform, ann_path, reduce_zero_label, image.shape)
        maps = partition_maps(teacher[0].cpu(), gt=gt, student_logits=None if student is None else student[0].cpu(),
                              **settings)
        picture = draw_partitions(image, maps, settings['topk'], meta.get('classes'), meta.get('palette'),
                                  title=f'{osp.basename(path)}; {side}', panel_width=args.panel_width)
        out = osp.join(args.out, rel_stem + '_partitions.png')
        os.makedirs(osp.dirname(out), exist_ok=True)
        mmcv.imwrite(mmcv.rgb2bgr(picture), out)
        written.append(out)
        progress.update()
    print(f'\n{len(written)} partition pictures written to {args.out}')
    return written


def main(argv=None):
    return visualize(parse_args(argv))


if __name__ == '__main__':
    main()
