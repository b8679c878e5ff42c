"""ONNX export of a student with a runtime parity check (``tools/export_onnx.py``).

:func:`export_onnx` exports a segmentor's ``tensor`` mode (the decode head's logits) with the data
preprocessor's channel order and mean/std normalisation *inside* the graph, so the ONNX model takes what
MMSeg's ``SegDataPreProcessor`` takes: float pixels 0..255, NCHW, channels in the order ``mmcv.imread``
(OpenCV) loads them, i.e. BGR for the shipped configs (the graph swaps them to RGB when the config says
``bgr_to_rgb=True``). It returns the logits at the head's stride (1/8 or 1/4 of the input), as MMSeg's tensor
mode does; resize them bilinearly to the image and take the argmax to get the label map, as ``predict`` does.
The export is checked (``onnx.checker``, the opset it holds) and run in onnxruntime on real images beside
PyTorch; it is refused when the argmax maps agree on fewer than 99.9% of the pixels. The file is written
atomically: nothing at the output path changes unless every check passed.
"""

import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch

from .images import ParityImage, parity_images, to_batch
from .models import PixelsToLogits, load_student
from .onnx_graph import (
    DEFAULT_OPSET,
    DYNAMIC_CHOICES,
    ExportedGraph,
    OnnxParityError,
    check_onnx_file,
    check_opset,
    check_out_folder,
    export_graph,
    initial_dynamic_axes,
)
from .parity import MIN_ARGMAX_AGREEMENT, OnnxExportReport, parity_inputs, refusal, run_parity


def _temporary_path(out_path: str) -> str:
    """Where the graph is written and checked before it is moved to ``out_path``: a hidden file beside it."""
    return osp.join(osp.dirname(osp.abspath(out_path)), f'.{osp.basename(out_path)}.tmp-{os.getpid()}.onnx')


def _new_report(
    out_path: str, opset: int, graph: ExportedGraph, module: PixelsToLogits, checkpoint_path, why_fixed: str
) -> OnnxExportReport:
    """The report of one exported graph, before its parity cases are run."""
    return OnnxExportReport(
        path=out_path,
        opset=opset,
        exporter=f'torch.onnx.export(dynamo=True), torch {torch.__version__}',
        dynamic_axes=graph.dynamic,
        input_size=graph.input_size,
        normalization_in_graph=module.mean is not None,
        bgr_to_rgb_in_graph=module.bgr_to_rgb,
        weights=checkpoint_path or 'random (no checkpoint given)',
        notes=[why_fixed] if why_fixed and 'height' not in graph.dynamic else [],
    )


def _parity_problem(
    report: OnnxExportReport,
    module: PixelsToLogits,
    path: str,
    images: List[ParityImage],
    graph: ExportedGraph,
    min_agreement: float,
) -> Optional[str]:
    """Run the parity cases of the graph at ``path`` into ``report.cases``; why it is refused, or None."""
    try:
        report.cases = run_parity(module, path, parity_inputs(images, graph))
        return refusal(report, min_agreement)
    except OnnxParityError as err:
        return str(err)


def _refused(out_path: str, problem: str, report: OnnxExportReport) -> OnnxParityError:
    return OnnxParityError(
        f'Refused to write {out_path}: {problem}.\n'
        + (report.summary() if report.cases else '')
        + f'\nTry another --opset (e.g. {DEFAULT_OPSET}), or report the model and this output.'
    )


def export_onnx(
    config_path: str,
    checkpoint_path: Optional[str],
    out_path: str,
    opset: int = DEFAULT_OPSET,
    images: Optional[Sequence[str]] = None,
    size: Optional[Tuple[int, int]] = None,
    cfg_options: Optional[dict] = None,
    max_images: int = 4,
    min_agreement: float = MIN_ARGMAX_AGREEMENT,
) -> OnnxExportReport:
    """Export the student of ``config_path`` (a SegDistiller config, or a plain MMSeg segmentor config) with the
    weights of ``checkpoint_path`` (None: random weights) to ``out_path`` and check it; see the module docstring.

    The graph is ``torch.onnx.export(dynamo=True)`` of :class:`PixelsToLogits` at ``opset``, with dynamic batch,
    height and width where the model allows (a graph whose dynamic size fails the check is exported again with
    the traced size fixed). It is written to a temporary file beside ``out_path``, checked with
    ``onnx.checker``, run in onnxruntime (CPUExecutionProvider) on ``images`` (else the config's test/val
    images, else a synthetic one) beside PyTorch, and moved to ``out_path`` only when the argmax maps agree on
    at least ``min_agreement`` of the positions. Raises FileNotFoundError (no such folder),
    CheckpointMismatchError (weights of another architecture), OnnxExportError (op, opset) or OnnxParityError;
    then nothing at ``out_path`` has changed.
    """
    check_out_folder(out_path)
    check_opset(opset)
    segmentor, cfg = load_student(config_path, checkpoint_path, cfg_options)
    module = PixelsToLogits(segmentor).eval()
    images_ = parity_images(cfg, images, size, max_images)
    example = to_batch(images_[0].pixels, images_[0].pixels[:, ::-1])
    tmp = _temporary_path(out_path)
    dynamic, why_fixed = initial_dynamic_axes(segmentor)
    try:
        while True:
            graph = export_graph(module, example, tmp, opset, dynamic)
            check_onnx_file(tmp, opset)
            report = _new_report(out_path, opset, graph, module, checkpoint_path, why_fixed)
            problem = _parity_problem(report, module, tmp, images_, graph, min_agreement)
            if problem is None:
                os.replace(tmp, out_path)
                return report
            if 'height' in graph.dynamic:  # the dynamic-size graph is wrong somewhere: fix the traced size
                dynamic, why_fixed = (
                    DYNAMIC_CHOICES[1],
                    f'height and width fixed: the dynamic-size graph failed ({problem})',
                )
                continue
            raise _refused(out_path, problem, report)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
