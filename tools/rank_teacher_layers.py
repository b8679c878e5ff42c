"""Rank a teacher's layers by knowledge quality Q = S + sqrt(I * E) for feature-only KD.

    python tools/rank_teacher_layers.py CONFIG CHECKPOINT [--layers backbone.layer3 backbone.layer4 ...]
        [--split train] [--num-images 16] [--per-class 100] [--top-k 2] [--out-dir DIR] [--device cpu]
        [--cfg-options ...]

CONFIG is a distiller config (its ``model.teacher`` is ranked) or a plain MMSeg config; CHECKPOINT holds that
model's weights. The tool runs the model on ``--num-images`` images of the split (through the config's
pipeline), samples up to ``--per-class`` labelled positions per class at each layer's resolution, computes
separation S, information I, efficiency E and Q (gdkd_seg/analysis/knowledge_quality.py documents each
term), prints a table, writes ``quality.json`` and ``quality.png`` to the out dir and names the ``--top-k``
layers with the highest Q: the teacher layers to pair with student layers in a feature-only KD config.
"""

import argparse
import json
import os
import os.path as osp
from typing import Dict, List

import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar
from mmseg.registry import DATASETS, MODELS

import gdkd_seg  # noqa: F401
from gdkd_seg.analysis import knowledge_quality, sample_labelled_positions
from gdkd_seg.config import load_config, resolve_model_cfg
from gdkd_seg.datasets.checks import check_data_roots
from gdkd_seg.models import FrozenTeacher, ModuleOutputRecorder
from gdkd_seg.models.stepping_stones import backbone_stage_names

DISTILLERS = ('SegDistiller',)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='distiller config (its teacher is ranked) or plain MMSeg config')
    parser.add_argument('checkpoint', help="the ranked model's checkpoint (e.g. the teacher's)")
    parser.add_argument('--layers', nargs='+', help='module names to rank (default: the backbone stages)')
    parser.add_argument(
        '--split',
        choices=['train', 'val', 'test'],
        default='train',
        help='dataloader whose dataset and pipeline give the images (default: train)',
    )
    parser.add_argument('--num-images', type=int, default=16, help='images to run (default 16)')
    parser.add_argument(
        '--per-class', type=int, default=100, help='labelled positions sampled per class and layer (default 100)'
    )
    parser.add_argument('--top-k', type=int, default=2, help='how many layers to suggest (default 2)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the image and position sampling')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='where the model runs (default: cuda when available)',
    )
    parser.add_argument(
        '--out-dir', help='where quality.json and quality.png go (default work_dirs/rank_teacher_layers/<config name>)'
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    args = parser.parse_args(argv)
    for name in ('num_images', 'per_class', 'top_k'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    return args


def ranked_model_cfg(cfg) -> dict:
    model = cfg.model
    return resolve_model_cfg(model.teacher) if model.get('type') in DISTILLERS else model


def collect_features(
    model, dataset, layers: List[str], indices, per_class: int, ignore_index, generator
) -> Dict[str, tuple]:
    """Per layer: sampled ``(P, C)`` features, ``(P,)`` labels and labelled positions seen per image."""
    recorder = ModuleOutputRecorder(model, layers)
    feats = {name: [] for name in layers}
    labels = {name: [] for name in layers}
    labelled = {name: 0 for name in layers}
    progress = ProgressBar(len(indices))
    with torch.no_grad():
        for index in indices:
            data = model.data_preprocessor(pseudo_collate([dataset[index]]), training=True)
            with recorder.recording():
                model._forward(data['inputs'], data['data_samples'])
            gt = torch.stack([sample.gt_sem_seg.data[0] for sample in data['data_samples']])
            for name in layers:
                out = recorder[name]
                if not torch.is_tensor(out) or out.dim() != 4:
                    raise ValueError(
                        f'{name} outputs {type(out).__name__}, not an (N, C, H, W) feature map: '
                        'rank modules that return one (e.g. backbone.layer3)'
                    )
                f, y = sample_labelled_positions(out.float().cpu(), gt.cpu(), per_class, ignore_index, generator)
                feats[name].append(f)
                labels[name].append(y)
                small = torch.nn.functional.interpolate(gt[:, None].float(), size=out.shape[-2:], mode='nearest')
                labelled[name] += int((small != ignore_index).sum())
            progress.update()
    recorder.remove()
    result = {}
    for name in layers:
        f, y = torch.cat(feats[name]), torch.cat(labels[name])
        keep = torch.cat(
            [
                (y == c).nonzero()[:, 0][torch.randperm(int((y == c).sum()), generator=generator)[:per_class]]
                for c in y.unique()
            ]
        )
        result[name] = (f[keep], y[keep], labelled[name] / len(indices))
    return result


def rank_layers(samples: Dict[str, tuple], dataset_len: int) -> List[dict]:
    rows = []
    for name, (feats, labels, labelled_per_image) in samples.items():
        # N of the efficiency's dataset-size factor: labelled positions of the whole dataset at this layer.
        quality = knowledge_quality(feats, labels, dataset_size=max(int(labelled_per_image * dataset_len), 1))
        rows.append(dict(layer=name, channels=int(feats.shape[1]), **quality.as_dict()))
    return rows


def format_table(rows: List[dict]) -> str:
    header = f'| {"layer":<28} | {"C":>5} | {"S":>7} | {"I":>7} | {"E":>7} | {"Q":>7} | {"samples":>7} |'
    lines = [header, '|' + '|'.join('-' * (len(cell)) for cell in header.split('|')[1:-1]) + '|']
    for r in rows:
        lines.append(
            f'| {r["layer"]:<28} | {r["channels"]:>5} | {r["separation"]:>7.3f} | {r["information"]:>7.3f} '
            f'| {r["efficiency"]:>7.3f} | {r["quality"]:>7.3f} | {r["num_samples"]:>7} |'
        )
    return '\n'.join(lines)


def plot(rows: List[dict], path: str, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 1.2 * len(rows)), 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = range(len(rows))
    for key, label, style in (
        ('separation', 'S (separation)', '--'),
        ('information', 'I (information)', ':'),
        ('efficiency', 'E (efficiency)', '-.'),
        ('quality', 'Q = S + sqrt(I E)', '-'),
    ):
        ax.plot(x, [r[key] for r in rows], style, marker='o', label=label, linewidth=2.5 if key == 'quality' else 1.5)
    ax.set_xticks(list(x), [r['layer'] for r in rows], rotation=20, ha='right')
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader_key = f'{args.split}_dataloader'
    if loader_key not in cfg:
        raise ValueError(f'{args.config} has no {loader_key}: choose another --split')
    check_data_roots(cfg, (loader_key,))
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {args.checkpoint}')

    model = revert_sync_batchnorm(MODELS.build(ranked_model_cfg(cfg)))  # SyncBN configs on one device
    holder = FrozenTeacher(model, args.checkpoint)  # strict loading with errors that name the mismatch
    holder.load()
    model = holder.model.to(args.device).eval()
    layers = args.layers or backbone_stage_names(model)

    dataset = DATASETS.build(cfg[loader_key].dataset)
    generator = torch.Generator().manual_seed(args.seed)
    indices = torch.randperm(len(dataset), generator=generator)[: args.num_images].tolist()
    ignore_index = getattr(model.decode_head, 'ignore_index', 255)
    print(
        f'Sampling {args.per_class} positions per class at {len(layers)} layers of {len(indices)} {args.split} images'
    )
    samples = collect_features(model, dataset, layers, indices, args.per_class, ignore_index, generator)
    rows = rank_layers(samples, len(dataset))

    name = osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('work_dirs', 'rank_teacher_layers', name)
    os.makedirs(out_dir, exist_ok=True)
    best = sorted(rows, key=lambda r: r['quality'], reverse=True)[: args.top_k]
    with open(osp.join(out_dir, 'quality.json'), 'w') as f:
        json.dump(
            dict(
                config=args.config,
                checkpoint=args.checkpoint,
                split=args.split,
                images=len(indices),
                per_class=args.per_class,
                seed=args.seed,
                layers=rows,
                suggested=[r['layer'] for r in best],
            ),
            f,
            indent=1,
        )
    plot(rows, osp.join(out_dir, 'quality.png'), f'Knowledge quality of {name} layers')
    print('\n' + format_table(rows))
    print(f'\nSuggested teacher layers (highest Q): {", ".join(r["layer"] for r in best)}')
    print(f'Table and plot: {osp.join(out_dir, "quality.json")}, {osp.join(out_dir, "quality.png")}')
    return rows


if __name__ == '__main__':
    main()
