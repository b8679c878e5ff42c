"""The student as users ship it: ONNX export with a runtime parity check, and the teacher-versus-student cost.

- :mod:`.models`: the student (or a plain MMSeg model) with its weights, and :class:`PixelsToLogits`, its
  ``tensor`` mode behind the data preprocessor's channel swap and normalisation;
- :mod:`.images`: the images the export is checked on, and the config's test size;
- :mod:`.onnx_graph`: the checks before export, the exporter, its errors, ``onnx.checker`` and onnxruntime;
- :mod:`.parity`: onnxruntime beside PyTorch, and the export's report;
- :mod:`.onnx_export`: :func:`export_onnx`, which puts them together and writes the file only when every check
  passed (see its module docstring for what the graph takes and returns);
- :mod:`.cost`: :func:`model_cost` measures parameters, FLOPs and CPU latency (PyTorch and onnxruntime) of the
  teacher and the student of a distiller config; :func:`cost_table_markdown` formats them.

An application-layer package (``tools/export_onnx.py``, ``tools/model_cost.py``): it imports the rest of
gdkd_seg, and nothing in gdkd_seg below the demo imports it.
"""

from .cost import CostReport, CostRow, cost_table_markdown, model_cost
from .images import synthetic_image, to_batch
from .models import PixelsToLogits, load_student
from .onnx_export import export_onnx
from .onnx_graph import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, OnnxExportError, OnnxParityError, export_graph
from .parity import MIN_ARGMAX_AGREEMENT, OnnxExportReport

__all__ = [
    'CostReport',
    'CostRow',
    'DEFAULT_OPSET',
    'INPUT_NAME',
    'MIN_ARGMAX_AGREEMENT',
    'OUTPUT_NAME',
    'OnnxExportError',
    'OnnxExportReport',
    'OnnxParityError',
    'PixelsToLogits',
    'cost_table_markdown',
    'export_graph',
    'export_onnx',
    'load_student',
    'model_cost',
    'synthetic_image',
    'to_batch',
]
