"""Per-pixel pictures of GDKD's top-k partition: the maps and the figure.

:func:`partition_maps` computes, with the partition code the loss uses
(:func:`~gdkd_seg.losses.topk_partition_mask`, :func:`~gdkd_seg.losses.gdkd_group_ids`,
:func:`~gdkd_seg.losses.gdkd_per_position`), the teacher's top-1 class, its mass on its top-k group
(b_A), its entropy, where the ground truth is outside the teacher's top-k (DKD's target class falls in
GDKD's other group) or is not its top-1, and the per-pixel GDKD loss and its three terms.
:func:`draw_partitions` draws them into one RGB image with labelled panels and colour bars.
:func:`predict_logits` gets the teacher's (and student's) logits of a data batch from a ``SegDistiller``
or a plain MMSeg segmentor; the tool ``tools/visualize_partitions.py`` and
:class:`~gdkd_seg.visualization.PartitionVisualizationHook` share all three.
"""

import math
import re
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import GDKDLoss, align_logits_and_labels, gdkd_per_position, topk_partition_mask
from ..losses.base import check_topk, check_topk_below_classes
from ..losses.functional import check_labels_in_range

GDKD_KEYS = ('topk', 'w0', 'w1', 'w2', 'temperature', 'ignore_index', 'teacher_scaling')
IGNORED_RGB = (190, 190, 190)
DIFFERS_RGB = (230, 40, 40)
MAX_CLASSES_IN_BAR = 20


# ----------------------------------------------------------------------------
# settings and logits
# ----------------------------------------------------------------------------
def gdkd_settings(model=None, topk: Optional[int] = None) -> dict:
    """``topk, w0, w1, w2, temperature, ignore_index, teacher_scaling`` of the GDKD loss to draw.

    Taken from the first ``GDKDLoss`` of a ``SegDistiller`` (its decode-head loss in the shipped
    configs), else ``GDKDLoss``'s defaults; ``topk`` overrides k.
    """
    losses = getattr(model, 'distill_losses', None) or {}
    loss = next((m for m in losses.values() if isinstance(m, GDKDLoss)), None) or GDKDLoss()
    settings = {key: getattr(loss, key) for key in GDKD_KEYS}
    if topk is not None:
        settings['topk'] = check_topk(topk)  # the loss's own check
    return settings


def describe_settings(settings: dict) -> str:
    scaling = settings.get('teacher_scaling')
    return (
        f'GDKD k={settings["topk"]}, w0={settings["w0"]:g}, w1={settings["w1"]:g}, '
        f'w2={settings["w2"]:g}, T={settings["temperature"]:g}'
        + ('' if scaling is None else f'; teacher logits through {type(scaling).__name__}')
    )


def is_distiller(model) -> bool:
    return hasattr(model, 'teacher') and hasattr(model, 'student')


@torch.no_grad()
def predict_logits(model, data_batch: dict) -> Tuple[Tensor, Optional[Tensor], list]:
    """Teacher and student logits of a (collated) data batch, restored to each image's original size.

    ``model`` is a ``SegDistiller`` (teacher = ``model.teacher``, student = ``model.student``) or a plain
    MMSeg segmentor (it is the teacher; no student). The logits are what MMSeg's ``predict`` returns as
    ``seg_logits``: the decode head's output, upsampled, un-padded and resized like the prediction.
    Returns ``(teacher (N, C, H, W), student (N, C, H, W) or None, data_samples)``; the images of a batch
    must share one original size.
    """
    was_training = model.training
    model.eval()
    try:
        data = model.data_preprocessor(data_batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        if is_distiller(model):
            # predict() writes seg_logits into the samples: read the teacher's before the student runs.
            teacher = _stack_logits(model.teacher.predict(inputs, samples))
            student = _stack_logits(model.student.predict(inputs, samples))
        else:
            teacher, student = _stack_logits(model.predict(inputs, samples)), None
    finally:
        model.train(was_training)
    return teacher, student, samples


def _stack_logits(samples) -> Tensor:
    logits = [s.seg_logits.data for s in samples]
    shapes = {tuple(x.shape) for x in logits}
    if len(shapes) > 1:
        raise ValueError(f'images of one batch have different original sizes {sorted(shapes)}: pass them one at a time')
    return torch.stack(logits).float()


# ----------------------------------------------------------------------------
# the maps
# ----------------------------------------------------------------------------
@torch.no_grad()
def partition_maps(
    teacher_logits: Tensor,
    topk: int,
    gt: Optional[Tensor] = None,
    student_logits: Optional[Tensor] = None,
    w0: float = 1.0,
    w1: float = 1.0,
    w2: float = 2.0,
    temperature: float = 1.0,
    ignore_index: Optional[int] = 255,
    teacher_scaling: Optional[nn.Module] = None,
    chunk_rows: int = 1 << 18,
) -> Dict[str, Tensor]:
    """Per-pixel maps of the teacher's top-k partition and of the GDKD loss.

    Args:
        teacher_logits: ``(N, C, H, W)`` or ``(C, H, W)``.
        topk: k, the size of the teacher's top group A (``1 <= k < C``).
        gt: labels ``(N, H, W)`` / ``(H, W)`` (``ignore_index`` marks unlabelled pixels).
        student_logits: same shape as ``teacher_logits`` (the teacher is resized to it bilinearly
            otherwise, as the loss does).
        w0, w1, w2, temperature: GDKD's weights and T.
        teacher_scaling: the loss's transform of the teacher logits (e.g. ``TopKScaling``), applied
            first, as in the loss; every teacher map is then of the transformed logits.
        chunk_rows: pixels per chunk of the loss computation (bounds memory on large images).

    Returns a dict of ``(N, H, W)`` (or ``(H, W)``) tensors:
        ``teacher_top1`` (long), ``top_mass`` (b_A = teacher probability on its top-k at T),
        ``entropy`` (of softmax(z_t / T), nats), ``valid`` (bool, label != ignore_index; all True
        without ``gt``); with ``gt``: ``gt`` (long), ``gt_outside_topk`` and ``gt_not_top1`` (bool, False
        on ignored pixels); with ``student_logits``: ``high``, ``top``, ``other`` (the weighted terms
        T^2 w0 KL(b_t||b_s), T^2 w1 KL(q_t^A||q_s^A), T^2 w2 KL(q_t^B||q_s^B)) and ``loss`` (their sum;
        the training loss averages it over valid pixels and multiplies it by ``loss_weight``).
    """
    single = teacher_logits.dim() == 3
    if single:
        teacher_logits = teacher_logits[None]
        student_logits = None if student_logits is None else student_logits[None]
        gt = None if gt is None else gt[None]
    if teacher_logits.dim() != 4:
        raise ValueError(f'expected teacher logits (N, C, H, W) or (C, H, W), got {tuple(teacher_logits.shape)}')
    num_classes = teacher_logits.shape[1]
    check_topk_below_classes('GDKD', check_topk(topk), teacher_logits, teacher_logits)  # the loss's own checks
    with_student = student_logits is not None
    student, teacher, labels, valid = align_logits_and_labels(
        student_logits if with_student else teacher_logits, teacher_logits, gt, ignore_index, 'logits'
    )
    if labels is not None:
        check_labels_in_range(labels, valid, num_classes, ignore_index, 'The partition picture')
    if teacher_scaling is not None:
        teacher = teacher_scaling(teacher, labels)

    maps = _teacher_maps(teacher, labels, valid, topk, temperature)
    if with_student:
        maps.update(_gdkd_term_maps(student, teacher, topk, (w0, w1, w2), temperature, chunk_rows))

    return {k: v[0] for k, v in maps.items()} if single else maps


def _teacher_maps(teacher: Tensor, labels: Optional[Tensor], valid: Tensor, topk: int, temperature: float):
    """The teacher's top-1 class, mass on its top-k and entropy; with labels, where they fall outside its
    top-k and its top-1."""
    top_group = topk_partition_mask(teacher, topk)  # (N, C, H, W): the loss's group A
    top1 = topk_partition_mask(teacher, 1)
    log_p = F.log_softmax(teacher / temperature, dim=1)
    p = log_p.exp()
    maps = dict(
        teacher_top1=top1.float().argmax(dim=1),
        top_mass=(p * top_group).sum(dim=1),
        entropy=-(p * log_p).sum(dim=1),
        valid=valid,
    )
    if labels is not None:
        safe = torch.where(valid, labels, torch.zeros_like(labels))[:, None]
        maps.update(
            gt=labels,
            gt_outside_topk=valid & ~top_group.gather(1, safe)[:, 0],
            gt_not_top1=valid & ~top1.gather(1, safe)[:, 0],
        )
    return maps


def _gdkd_term_maps(student: Tensor, teacher: Tensor, topk: int, weights, temperature: float, chunk_rows: int):
    """``high``, ``top``, ``other`` and their sum ``loss`` per pixel, ``chunk_rows`` pixels at a time."""
    num_classes = student.shape[1]
    shape = student.shape[:1] + student.shape[2:]
    zs = student.permute(0, 2, 3, 1).reshape(-1, num_classes)
    zt = teacher.permute(0, 2, 3, 1).reshape(-1, num_classes)
    chunks = [
        gdkd_per_position(zs[i : i + chunk_rows], zt[i : i + chunk_rows], topk, weights, temperature)
        for i in range(0, zs.shape[0], chunk_rows)
    ]
    maps = {name: torch.cat([c[name] for c in chunks]).view(shape) for name in ('high', 'top', 'other')}
    maps['loss'] = maps['high'] + maps['top'] + maps['other']
    return maps


# ----------------------------------------------------------------------------
# the figure
# ----------------------------------------------------------------------------
def default_palette(num_classes: int) -> np.ndarray:
    """A fixed random palette (MMSeg's visualizer does the same when a dataset has none)."""
    return np.random.default_rng(42).integers(0, 256, size=(num_classes, 3), dtype=np.uint8)


def _class_meta(num_classes: int, classes, palette) -> Tuple[List[str], np.ndarray]:
    classes = list(classes or [])
    classes += [f'class {i}' for i in range(len(classes), num_classes)]
    palette = np.asarray(palette if palette is not None and len(palette) else np.zeros((0, 3)), np.uint8)
    if len(palette) < num_classes:
        palette = np.concatenate([palette, default_palette(num_classes)[len(palette) :]])
    return classes, palette


def _wrap_title(text: str, panel_width: int) -> str:
    """Wrap a panel title to the width of its map, about 70% of the panel (a colour bar stands beside
    it), at about 7 px per character at font size 9. Mathtext (``$...$``) is never split."""
    width = max(12, int(panel_width * 0.7 / 7))
    keep = '\x00'  # stands for the spaces inside mathtext while wrapping
    text = re.sub(r'\$[^$]*\$', lambda math: math.group().replace(' ', keep), text)
    lines = [
        wrapped for line in text.split('\n') for wrapped in textwrap.wrap(line, width, break_on_hyphens=False) or ['']
    ]
    return '\n'.join(lines).replace(keep, ' ')


def figure_layout(
    num_panels: int, aspect: float, panel_width: int = 480, columns: int = 4
) -> Tuple[int, int, int, int]:
    """``(rows, cols, width_px, height_px)`` of a figure of ``num_panels`` maps of ``aspect`` = H / W."""
    cols = min(columns, num_panels)
    rows = math.ceil(num_panels / cols)
    aspect = min(max(aspect, 0.25), 2.5)
    panel_height = round(panel_width * 0.8 * aspect) + 60  # colour bar beside, title above
    return rows, cols, cols * panel_width, rows * panel_height + 50  # + figure title


def draw_partitions(
    image: np.ndarray,
    maps: Dict[str, Tensor],
    topk: int,
    classes: Sequence[str] = None,
    palette=None,
    title: str = '',
    panel_width: int = 480,
    dpi: int = 100,
) -> np.ndarray:
    """Draw the maps of one image (``partition_maps`` output, ``(H, W)`` each) into an RGB uint8 array
    (the picture of :func:`partition_figure`)."""
    fig = partition_figure(image, maps, topk, classes, palette, title, panel_width, dpi)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def partition_figure(
    image: np.ndarray,
    maps: Dict[str, Tensor],
    topk: int,
    classes: Sequence[str] = None,
    palette=None,
    title: str = '',
    panel_width: int = 480,
    dpi: int = 100,
):
    """The matplotlib ``Figure`` (on an Agg canvas) of the maps of one image.

    Panels: the image, the ground truth, the teacher's top-1 class (both in the dataset ``palette``,
    colour bars naming the classes present), b_A, the teacher entropy, GT outside the teacher's top-k, GT
    not its top-1, the GDKD loss and its three terms (each on its own colour scale, clipped at its 99.5th
    percentile; the titles give the means). Panels whose maps are absent (no ``gt``, no student) are left
    out. ``image`` is RGB ``(H0, W0, 3)``, resized to the maps' size if it differs.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    maps = {k: v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v) for k, v in maps.items()}
    height, width = maps['teacher_top1'].shape
    if image.shape[:2] != (height, width):
        image = mmcv.imresize(image, (width, height), interpolation='area')
    valid = maps['valid']
    num_classes = int(max(maps['teacher_top1'].max(), 0)) + 1
    if 'gt' in maps and valid.any():
        num_classes = max(num_classes, int(maps['gt'][valid].max()) + 1)
    classes, palette = _class_meta(max(num_classes, len(classes or [])), classes, palette)

    panels = _teacher_panels(image, maps, topk, classes, palette) + _student_panels(maps, topk)
    rows, cols, width_px, height_px = figure_layout(len(panels), height / width, panel_width)
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (panel_title, draw) in zip(axes, panels):
        draw(ax)
        ax.set_title(_wrap_title(panel_title, panel_width), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _teacher_panels(image, maps, topk, classes, palette) -> list:
    """``(title, draw(ax))`` of the image, the ground truth and the teacher's maps."""
    valid = maps['valid']
    entropy_max = math.log(len(classes))
    panels = [('Image', lambda ax: ax.imshow(image))]
    if 'gt' in maps:
        panels.append(('Ground truth', lambda ax: _class_panel(ax, maps['gt'], valid, classes, palette)))
    panels += [
        (
            'Teacher top-1 class',
            lambda ax: _class_panel(ax, maps['teacher_top1'], np.ones_like(valid), classes, palette),
        ),
        (
            f'Teacher mass on its top-{topk} ($b_A$)',
            lambda ax: _scalar_panel(ax, maps['top_mass'], None, 'viridis', 0.0, 1.0, '$b_A$'),
        ),
        (
            'Teacher entropy (multimodal where high)',
            lambda ax: _scalar_panel(
                ax, maps['entropy'], None, 'magma', 0.0, entropy_max, f'nats (max log C = {entropy_max:.2f})'
            ),
        ),
    ]
    if 'gt' in maps:
        panels += [
            (
                f'GT not in teacher top-{topk}: {_percent(maps["gt_outside_topk"], valid)}\n'
                "(DKD's target class is in GDKD's other group)",
                lambda ax: _flag_panel(
                    ax, image, maps['gt_outside_topk'], valid, [f'GT in top-{topk}', f'GT not in top-{topk}']
                ),
            ),
            (
                f'GT not teacher top-1: {_percent(maps["gt_not_top1"], valid)}',
                lambda ax: _flag_panel(ax, image, maps['gt_not_top1'], valid, ['GT = top-1', 'GT ≠ top-1']),
            ),
        ]
    return panels


def _student_panels(maps, topk) -> list:
    """``(title, draw(ax))`` of the per-pixel GDKD loss and its terms (none without a student)."""
    if 'loss' not in maps:
        return []
    valid = maps['valid']
    terms = (
        ('loss', f'GDKD loss per pixel (mean {_mean(maps["loss"], valid)})'),
        ('high', f'$w_0\\,KL(b_t\\|b_s)$ (group masses)\nmean {_mean(maps["high"], valid)}'),
        ('top', f'$w_1\\,KL(q^A_t\\|q^A_s)$ (within top-{topk})\nmean {_mean(maps["top"], valid)}'),
        ('other', f'$w_2\\,KL(q^B_t\\|q^B_s)$ (within the rest)\nmean {_mean(maps["other"], valid)}'),
    )
    return [
        (
            title,
            lambda ax, key=key: _scalar_panel(
                ax, maps[key], valid, 'inferno', 0.0, _robust_max(maps[key][valid]), 'per pixel'
            ),
        )
        for key, title in terms
    ]


def _percent(flags: np.ndarray, valid: np.ndarray) -> str:
    return f'{100.0 * flags.sum() / max(valid.sum(), 1):.1f}% of labelled pixels'


def _mean(values: np.ndarray, valid: np.ndarray) -> str:
    return f'{values[valid].mean():.4f}' if valid.any() else 'n/a'


def _robust_max(values: np.ndarray) -> float:
    """The 99.5th percentile, so that a few extreme pixels do not wash out the picture."""
    top = float(np.percentile(values, 99.5)) if values.size else 0.0
    return top if top > 0 else max(float(values.max()) if values.size else 0.0, 1e-6)


def _categorical_bar(ax, colours, labels):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

    n = len(colours)
    mappable = ScalarMappable(BoundaryNorm(np.arange(n + 1), n), ListedColormap(np.asarray(colours) / 255.0))
    bar = ax.figure.colorbar(mappable, ax=ax, ticks=np.arange(n) + 0.5, fraction=0.05, pad=0.02)
    bar.ax.set_yticklabels(labels, fontsize=7)
    bar.ax.tick_params(length=0)
    bar.ax.invert_yaxis()  # read top-down in class order


def _class_panel(ax, labels, valid, classes, palette):
    rgb = np.empty(labels.shape + (3,), np.uint8)
    rgb[:] = IGNORED_RGB
    rgb[valid] = palette[labels[valid]]
    ax.imshow(rgb, interpolation='nearest')
    ids, counts = np.unique(labels[valid], return_counts=True)
    shown = np.sort(ids[np.argsort(-counts)[:MAX_CLASSES_IN_BAR]])  # the most frequent, in class order
    colours, names = [palette[i] for i in shown], [classes[i] for i in shown]
    if not valid.all():
        colours, names = colours + [IGNORED_RGB], names + ['ignored']
    if colours:
        _categorical_bar(ax, colours, names)


def _flag_panel(ax, image, flags, valid, labels):
    """The image dimmed to grey, flagged pixels in red, ignored pixels light grey."""
    grey = image.astype(np.float32).mean(axis=2, keepdims=True) * 0.45
    rgb = np.repeat(grey, 3, axis=2).astype(np.uint8)
    rgb[flags] = DIFFERS_RGB
    rgb[~valid] = IGNORED_RGB
    ax.imshow(rgb, interpolation='nearest')
    colours, names = [(60, 60, 60), DIFFERS_RGB], list(labels)
    if not valid.all():
        colours, names = colours + [IGNORED_RGB], names + ['ignored']
    _categorical_bar(ax, colours, names)


def _scalar_panel(ax, values, valid, cmap, vmin, vmax, label):
    from matplotlib import colormaps

    cmap = colormaps[cmap].with_extremes(bad=np.asarray(IGNORED_RGB) / 255.0)
    shown = values if valid is None else np.ma.masked_where(~valid, values)
    im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, interpolation='nearest')
    above = np.ma.max(shown) > vmax if np.ma.count(shown) else False
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.05, pad=0.02, extend='max' if above else 'neither')
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=7)
