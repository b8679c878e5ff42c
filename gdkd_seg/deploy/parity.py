"""onnxruntime beside PyTorch: the batches compared (:func:`parity_inputs`), the comparison of their logits and
argmax maps (:func:`run_parity`), the export's report (:class:`OnnxExportReport`) and why it is refused."""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import mmcv
import numpy as np
import torch
from torch import nn

from .images import ParityImage, to_batch
from .onnx_graph import INPUT_NAME, OUTPUT_NAME, ExportedGraph, OnnxParityError, ort_session

MIN_ARGMAX_AGREEMENT = 0.999


@dataclass
class ParityCase:
    name: str
    shape: Tuple[int, ...]  # the input batch's NCHW shape
    max_abs_diff: float
    argmax_agreement: float
    pixels: int  # logit positions compared
    max_abs_logit: float  # the scale of PyTorch's logits, for the difference to be read against


@dataclass
class OnnxExportReport:
    path: str
    opset: int
    exporter: str
    dynamic_axes: Tuple[str, ...]
    input_size: Tuple[int, int]
    normalization_in_graph: bool
    bgr_to_rgb_in_graph: bool
    weights: str
    notes: List[str] = field(default_factory=list)
    cases: List[ParityCase] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.cases)

    @property
    def argmax_agreement(self) -> float:
        return sum(c.argmax_agreement * c.pixels for c in self.cases) / sum(c.pixels for c in self.cases)

    def summary(self) -> str:
        dynamic = ', '.join(self.dynamic_axes) or 'none'
        lines = [
            f'ONNX model: {self.path} (opset {self.opset}, {self.exporter})',
            f'  input {INPUT_NAME!r}: float32 N x 3 x H x W pixels 0..255 in mmcv.imread channel order; '
            f'mean/std normalisation in the graph: {self.normalization_in_graph}, BGR->RGB in the graph: '
            f'{self.bgr_to_rgb_in_graph}',
            f'  output {OUTPUT_NAME!r}: the decode head logits; dynamic axes: {dynamic}'
            + ('' if 'height' in self.dynamic_axes else f' (fixed H x W = {self.input_size[0]}x{self.input_size[1]})'),
            *[f'  {note}' for note in self.notes],
            f'  weights: {self.weights}',
            f'  onnxruntime vs PyTorch on {len(self.cases)} inputs: max |logit diff| {self.max_abs_diff:.3g}, '
            f'argmax agreement {100 * self.argmax_agreement:.4f}%',
        ]
        lines += [
            f'    {c.name} {list(c.shape)}: max |diff| {c.max_abs_diff:.3g} (max |logit| {c.max_abs_logit:.3g}), '
            f'agreement {100 * c.argmax_agreement:.4f}%'
            for c in self.cases
        ]
        return '\n'.join(lines)


def compare_outputs(name: str, batch: np.ndarray, reference: np.ndarray, candidate: np.ndarray) -> ParityCase:
    if candidate.shape != reference.shape:
        raise OnnxParityError(
            f'onnxruntime returned logits of shape {list(candidate.shape)} for {name}, PyTorch {list(reference.shape)}'
        )
    diff = float(np.abs(candidate - reference).max()) if np.isfinite(candidate).all() else float('inf')
    agree = candidate.argmax(1) == reference.argmax(1)
    return ParityCase(
        name, tuple(batch.shape), diff, float(agree.mean()), int(agree.size), float(np.abs(reference).max())
    )


def parity_inputs(images: List[ParityImage], graph: ExportedGraph) -> List[Tuple[str, np.ndarray]]:
    """The batches compared: each image alone (resized to the traced size where height/width are fixed), a
    batch of two where the batch axis is dynamic, and another size where height/width are dynamic."""
    h, w = graph.input_size
    fixed = 'height' not in graph.dynamic
    resize = [fixed and p.pixels.shape[:2] != (h, w) for p in images]
    pixels = [mmcv.imresize(p.pixels, (w, h)) if r else p.pixels for p, r in zip(images, resize)]
    cases = [(p.name + (f' resized to {h}x{w}' if r else ''), to_batch(x)) for p, x, r in zip(images, pixels, resize)]
    if 'batch' in graph.dynamic:
        cases.append((f'{images[0].name} and its mirror image, batch 2', to_batch(pixels[0], pixels[0][:, ::-1])))
    if not fixed and len({p.shape for p in pixels}) == 1:
        other = (max(32, (h * 3 // 4) // 8 * 8), max(32, (w * 5 // 4) // 8 * 8 + 8))
        resized = mmcv.imresize(pixels[0], (other[1], other[0]))
        cases.append((f'{images[0].name} resized to {other[0]}x{other[1]}', to_batch(resized)))
    return cases


def run_parity(module: nn.Module, path: str, cases: List[Tuple[str, np.ndarray]], threads=None) -> List[ParityCase]:
    """Each case through PyTorch and through onnxruntime, compared."""
    session = ort_session(path, threads)
    results = []
    for name, batch in cases:
        with torch.no_grad():
            reference = module(torch.from_numpy(batch)).numpy()
        try:
            candidate = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        except Exception as err:  # onnxruntime's pybind errors
            raise OnnxParityError(
                f'onnxruntime failed on {name} (input {list(batch.shape)}): {str(err).splitlines()[0]}'
            ) from err
        results.append(compare_outputs(name, batch, reference, candidate))
    return results


def refusal(report: 'OnnxExportReport', min_agreement: float) -> Optional[str]:
    if report.argmax_agreement >= min_agreement and np.isfinite(report.max_abs_diff):
        return None
    return (
        f'onnxruntime and PyTorch disagree: argmax agreement {100 * report.argmax_agreement:.4f}% (at least '
        f'{100 * min_agreement:.1f}% needed), max |logit diff| {report.max_abs_diff:.3g}'
    )
