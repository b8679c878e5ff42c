"""The ONNX graph of :class:`~gdkd_seg.deploy.models.PixelsToLogits`: the checks before export (output folder,
opset), ``torch.onnx``'s dynamo exporter with dynamic axes where the model allows, the errors that name what
failed and what to do, ``onnx.checker`` on the file, and the onnxruntime session that runs it."""

import contextlib
import io
import logging
import os.path as osp
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

DEFAULT_OPSET = 18  # the opset torch's dynamo exporter implements natively (lower ones need a conversion)
INPUT_NAME, OUTPUT_NAME = 'pixels', 'logits'


class OnnxExportError(RuntimeError):
    """The model could not be exported to ONNX (an op, an opset, a shape)."""


class OnnxParityError(OnnxExportError):
    """onnxruntime's outputs of the exported model differ from PyTorch's beyond the tolerance."""


@dataclass
class ExportedGraph:
    dynamic: Tuple[str, ...]  # the input axes left dynamic: 'batch', 'height', 'width'
    input_size: Tuple[int, int]  # the (H, W) it was traced at (the only size when height/width are static)
    log: str = ''


DYNAMIC_CHOICES = (('batch', 'height', 'width'), ('batch',), ())
SHAPE_ERROR_HINTS = ('constraint', 'speciali', 'guard', 'symint', 'symbolic', 'dynamic', 'dim(')


def check_out_folder(path: str) -> None:
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f'The folder of the ONNX output {path!r} does not exist: {folder}. Create it first (mkdir -p {folder}) '
            'or pass another --out.'
        )


def check_opset(opset: int) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not 7 <= opset <= newest:
        raise OnnxExportError(
            f'ONNX opset {opset} is outside what torch.onnx and the installed onnx {onnx.__version__} support '
            f"(7 to {newest}); use --opset {DEFAULT_OPSET} (the exporter's native one) or higher."
        )


def _dynamic_shapes(dynamic: Sequence[str]):
    from torch.export import Dim

    dims = {
        0: Dim('batch', min=1, max=1024),
        2: Dim('height', min=32, max=8192),
        3: Dim('width', min=32, max=8192),
    }
    axes = {'batch': 0, 'height': 2, 'width': 3}
    return {INPUT_NAME: {axes[a]: dims[axes[a]] for a in dynamic}} if dynamic else None


def _error_chain(err: BaseException) -> str:
    parts, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        parts.append(f'{type(err).__name__}: {err}')
        err = err.__cause__ or err.__context__
    return '\n'.join(parts)


def _is_shape_error(err: BaseException) -> bool:
    text = _error_chain(err).lower()
    return any(hint in text for hint in SHAPE_ERROR_HINTS)


def mmcv_op_modules(model: nn.Module) -> List[str]:
    """``name (Class)`` of every module implemented by an mmcv compiled op (``mmcv.ops``)."""
    return [
        f'{name} ({type(m).__name__})' for name, m in model.named_modules() if type(m).__module__.startswith('mmcv.ops')
    ]


def _unsupported_op(text: str) -> Optional[str]:
    patterns = (
        r'Unsupported FX nodes: \{[^}]*\}',
        r'torch\.ops\.[\w.]+',
        r'aten::\w+',
        r'mmcv::\w+',
        r'[Nn]o (?:decomposition|symbolic|ONNX function) (?:found )?for [\w.:\']+',
    )
    for pattern in patterns:
        found = re.search(pattern, text)
        if found:
            return found.group(0)
    return None


def _export_error(err: Exception, model: nn.Module, opset: int) -> OnnxExportError:
    """An OnnxExportError naming what failed and what to do."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', _error_chain(err))  # the exporter colours its messages
    mmcv_ops = [name.removeprefix('segmentor.') for name in mmcv_op_modules(model)]
    first = text.splitlines()[0][:500] if text else type(err).__name__
    if mmcv_ops:
        return OnnxExportError(
            f'ONNX export failed ({first}). The model uses mmcv compiled ops, which torch.onnx cannot export: '
            f'{", ".join(mmcv_ops[:5])}. Deploy a student without them (e.g. plain convolutions instead of '
            'deformable ones), or export with mmdeploy, which has ONNX symbolics for mmcv ops.'
        )
    op = _unsupported_op(text)
    if op or 'opset' in text.lower():
        what = f'the operator {op}' if op else 'an operator'
        return OnnxExportError(
            f'ONNX export at opset {opset} failed on {what}: {first}. If the op has an ONNX form only in another '
            f'opset, try --opset {DEFAULT_OPSET} or a newer one (up to {_newest_opset()}); otherwise replace the '
            'module that uses it in the student config.'
        )
    return OnnxExportError(f'ONNX export at opset {opset} failed: {first}')


def _newest_opset() -> int:
    import onnx

    return onnx.defs.onnx_opset_version()


@contextlib.contextmanager
def _quiet_exporter():
    """Keep the exporter's progress lines and onnxscript's optimiser notes off the console; yields the log."""
    log = io.StringIO()
    optimizer_logger = logging.getLogger('onnxscript')
    level = optimizer_logger.level
    optimizer_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(log), torch.no_grad():
            yield log
    finally:
        optimizer_logger.setLevel(level)


def _torch_onnx_export(module, example, path, opset, dynamic) -> str:
    """Run torch.onnx's dynamo exporter into ``path``; returns what it printed."""
    with _quiet_exporter() as log:
        torch.onnx.export(
            module,
            (example,),
            path,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes=_dynamic_shapes(dynamic),
            verbose=False,
        )
    return log.getvalue()


def _pool_size(module: nn.Module) -> Tuple[int, int]:
    size = module.output_size
    return tuple(int(v) for v in (size if isinstance(size, (tuple, list)) else (size, size)))


def fixed_size_modules(model: nn.Module) -> List[str]:
    """Modules whose ONNX form holds only for the traced image size: adaptive pooling to an output other than
    1x1 (PSPNet's pyramid pooling) becomes index gathers computed for that size."""
    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    return [
        f'{name} ({type(m).__name__} to {_pool_size(m)})'
        for name, m in model.named_modules()
        if isinstance(m, pools) and _pool_size(m) != (1, 1)
    ]


def initial_dynamic_axes(model: nn.Module) -> Tuple[Tuple[str, ...], str]:
    """The most dynamic axes worth trying first, and why height and width are fixed when they are."""
    fixed = fixed_size_modules(model)
    if fixed:
        return DYNAMIC_CHOICES[1], f'height and width fixed: adaptive pooling to sizes other than 1 ({fixed[0]})'
    return DYNAMIC_CHOICES[0], ''


def export_graph(
    module: nn.Module, example: np.ndarray, path: str, opset: int = DEFAULT_OPSET, dynamic=DYNAMIC_CHOICES[0]
) -> ExportedGraph:
    """Export ``module`` (pixels -> logits) to ``path`` with the ``dynamic`` input axes where the exporter
    allows (falling back to a dynamic batch only, then to fixed shapes), traced at ``example`` (NCHW,
    batch >= 2 so the batch axis is not taken for a constant 1)."""
    choices = DYNAMIC_CHOICES[DYNAMIC_CHOICES.index(tuple(dynamic)) :]
    tensor = torch.from_numpy(example)
    for i, axes in enumerate(choices):
        try:
            log = _torch_onnx_export(module, tensor if axes else tensor[:1], path, opset, axes)
            return ExportedGraph(tuple(axes), tuple(example.shape[2:]), log)
        except Exception as err:  # the exporter raises many types (torch.export, dynamo, onnxscript)
            if i + 1 < len(choices) and _is_shape_error(err):
                continue
            raise _export_error(err, module, opset) from err
    raise AssertionError('unreachable')


def check_onnx_file(path: str, opset: int) -> None:
    """``onnx.checker`` on the file, and the default-domain opset it holds equals ``opset``."""
    import onnx

    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path, load_external_data=False)
    held = {o.domain or 'ai.onnx': o.version for o in model.opset_import}.get('ai.onnx')
    if held != opset:
        raise OnnxExportError(
            f'The model cannot be exported at opset {opset}: the exporter produced opset {held} (its conversion '
            f'to {opset} failed). Use --opset {held}, or a newer opset up to {_newest_opset()}.'
        )


def ort_session(path: str, threads: Optional[int] = None):
    """An onnxruntime CPU session with ``threads`` intra-op threads (default: torch's thread count)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    except Exception as err:  # onnxruntime's pybind errors (e.g. an opset or op it does not implement)
        raise OnnxExportError(
            f'onnxruntime {ort.__version__} cannot load the exported model: {err}. Try --opset {DEFAULT_OPSET}.'
        ) from err
