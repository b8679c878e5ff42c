"""What the student buys: parameters, FLOPs and CPU latency (PyTorch and onnxruntime) of the teacher and the
student of a distiller config (:func:`model_cost`), and their Markdown table (:func:`cost_table_markdown`,
``tools/model_cost.py``)."""

import contextlib
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from ..config import resolve_model_cfg
from .images import config_test_size, synthetic_image, to_batch
from .models import PixelsToLogits, build_segmentor, is_distiller, load_student
from .onnx_graph import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_graph, initial_dynamic_axes, ort_session


@dataclass
class CostRow:
    role: str  # 'teacher', 'student' or 'model'
    model: str  # backbone + decode head
    weights: str
    params: int  # of the inference graph (backbone, neck, decode head)
    aux_params: int  # of the training-only auxiliary head(s), not in params
    flops: int  # FlopAnalyzer: a multiply-add counts 1
    flops_size: Tuple[int, int]
    uncounted_ops: Tuple[str, ...]
    latency_size: Tuple[int, int]
    torch_ms: float
    ort_ms: Optional[float]


def describe(model_cfg: dict) -> str:
    """'ResNetV1c-101 + ASPPHead' from a segmentor config."""
    backbone = model_cfg.get('backbone', {})
    name = backbone.get('type', '?') + (f'-{backbone["depth"]}' if 'depth' in backbone else '')
    return f'{name} + {model_cfg.get("decode_head", {}).get("type", "?")}'


def inference_params(model: nn.Module) -> Tuple[int, int]:
    """(parameters used by ``tensor`` mode, parameters of the auxiliary head(s) that only training uses)."""
    aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith('auxiliary_head.'))
    return sum(p.numel() for p in model.parameters()) - aux, aux


def count_flops(model: nn.Module, size: Tuple[int, int]) -> Tuple[int, Tuple[str, ...]]:
    """FLOPs of ``model``'s tensor mode on one normalised image of ``size`` (MMEngine's FlopAnalyzer, which
    traces the model and counts a multiply-add as one FLOP), and the ops it found but does not count."""
    inputs = torch.zeros(1, 3, *size)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (inputs,))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
        flops = int(analyzer.total())
        uncounted = tuple(sorted(analyzer.unsupported_ops()))
    return flops, uncounted


def _median_ms(run, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def torch_latency_ms(module: nn.Module, size, runs: int, warmup: int) -> float:
    pixels = torch.from_numpy(to_batch(synthetic_image(size)))
    with torch.inference_mode():
        return _median_ms(lambda: module(pixels), runs, warmup)


def ort_latency_ms(module: nn.Module, size, runs: int, warmup: int, threads: int, opset=DEFAULT_OPSET) -> float:
    pixels = to_batch(synthetic_image(size))
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'model.onnx')
        dynamic, _ = initial_dynamic_axes(module)
        export_graph(module, np.concatenate([pixels, pixels[:, :, :, ::-1]]), path, opset, dynamic)
        session = ort_session(path, threads)
        return _median_ms(lambda: session.run([OUTPUT_NAME], {INPUT_NAME: pixels}), runs, warmup)


def measure(role, name, segmentor, weights, size, latency_size, runs, warmup, threads, onnx=True) -> CostRow:
    params, aux = inference_params(segmentor)
    flops, uncounted = count_flops(segmentor, size)
    module = PixelsToLogits(segmentor).eval()
    return CostRow(
        role=role,
        model=name,
        weights=weights,
        params=params,
        aux_params=aux,
        flops=flops,
        flops_size=tuple(size),
        uncounted_ops=uncounted,
        latency_size=tuple(latency_size),
        torch_ms=torch_latency_ms(module, latency_size, runs, warmup),
        ort_ms=ort_latency_ms(module, latency_size, runs, warmup, threads) if onnx else None,
    )


@contextlib.contextmanager
def torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class CostReport:
    config: str
    rows: List[CostRow]
    runs: int
    warmup: int
    threads: int
    flops_size_source: str
    load_average: float  # the 1-minute load average when the measurement began (others sharing the cores)


def model_cost(
    config_path: str,
    checkpoint_path: Optional[str] = None,
    size: Optional[Tuple[int, int]] = None,
    latency_size: Optional[Tuple[int, int]] = None,
    runs: int = 5,
    warmup: int = 1,
    threads: Optional[int] = None,
    cfg_options: Optional[dict] = None,
    onnx: bool = True,
) -> CostReport:
    """Parameters, FLOPs at ``size`` (default: the config's test size) and the median CPU latency per image
    (batch 1) at ``latency_size`` (default ``size``) in PyTorch and in onnxruntime, of the teacher and the
    student of a SegDistiller config (or of the model of a plain config). The student gets the checkpoint's
    weights (strictly checked); the teacher keeps random weights, since none of these numbers depends on them.
    """
    threads = threads or torch.get_num_threads()
    load_average = os.getloadavg()[0]
    student, cfg = load_student(config_path, checkpoint_path, cfg_options)
    source = 'the size given'
    if size is None:
        size, source = config_test_size(cfg), "the config's test size"
        if size is None:
            raise ValueError(
                f'{config_path} has no Resize in its test pipeline, so its test size is unknown: pass --size H W'
            )
    latency_size = tuple(latency_size or size)
    student_weights_ = f'checkpoint {osp.basename(checkpoint_path)}' if checkpoint_path else 'random'
    models = []
    if is_distiller(cfg):
        teacher_cfg = resolve_model_cfg(cfg.model.teacher)
        models.append(('teacher', describe(teacher_cfg), build_segmentor(teacher_cfg, cfg), 'random'))
        models.append(('student', describe(resolve_model_cfg(cfg.model.student)), student, student_weights_))
    else:
        models.append(('model', describe(cfg.model), student, student_weights_))
    with torch_threads(threads):
        rows = [
            measure(role, name, model, weights, size, latency_size, runs, warmup, threads, onnx)
            for role, name, model, weights in models
        ]
    return CostReport(config_path, rows, runs, warmup, threads, source, load_average)


def _number(value: float) -> str:
    """Three significant digits without an exponent: 2780, 480, 13.8, 0.203."""
    return f'{value:.0f}' if abs(value) >= 100 else f'{value:.3g}'


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    return platform.processor() or platform.machine()


def cost_table_markdown(report: CostReport, command: Optional[str] = None) -> str:
    """The cost report as a Markdown table, with how each column was measured (and ``command``) below it."""
    import onnxruntime

    fh, fw = report.rows[0].flops_size
    lh, lw = report.rows[0].latency_size
    threads = f'{report.threads} thread' + ('s' if report.threads != 1 else '')
    intra_op = f'{report.threads} intra-op thread' + ('s' if report.threads != 1 else '')
    header = (
        f'| role | model | weights | params (M) | GFLOPs at {fh}x{fw} | PyTorch CPU ms/img at {lh}x{lw} '
        f'| onnxruntime CPU ms/img at {lh}x{lw} |'
    )
    lines = [header, '|---|---|---|---|---|---|---|']
    for row in report.rows:
        ort_ms = _number(row.ort_ms) if row.ort_ms is not None else 'not measured'
        lines.append(
            f'| {row.role} | {row.model} | {row.weights} | {_number(row.params / 1e6)} | {_number(row.flops / 1e9)} '
            f'| {_number(row.torch_ms)} | {ort_ms} |'
        )
    notes = [
        f'Config: `{report.config}`; FLOPs at {report.flops_size_source} ({fh}x{fw}).',
        'Params: the inference graph (backbone, neck, decode head)'
        + ''.join(
            f"; the {r.role}'s training-only auxiliary head ({r.aux_params / 1e6:.3g} M) is left out"
            for r in report.rows
            if r.aux_params
        )
        + '.',
        "FLOPs: MMEngine's FlopAnalyzer (mmengine.analysis) on the tensor mode, batch 1, a multiply-add counted "
        'as one FLOP'
        + ''.join(
            f'; not counted for the {r.role}: {", ".join(r.uncounted_ops)}' for r in report.rows if r.uncounted_ops
        )
        + '.',
        f'Latency: median of {report.runs} runs after {report.warmup} warm-up, batch 1, input normalisation '
        f'included; torch {torch.__version__} with {threads}, onnxruntime {onnxruntime.__version__} '
        f'CPUExecutionProvider with {intra_op} (the model exported as by '
        f'tools/export_onnx.py, opset {DEFAULT_OPSET}); CPU: {_cpu_name()}, {os.cpu_count()} logical cores, '
        f'1-minute load average {report.load_average:.2f} when the run began.',
        'Weights: "random" where no checkpoint is given; parameters, FLOPs and latency do not depend on them.',
    ]
    if command:
        notes.append(f'Command: `{command}`')
    return '\n'.join(lines + [''] + [f'- {n}' for n in notes]) + '\n'
