"""The embedded demo: the whole distillation pipeline on digit scenes, on a laptop CPU (``tools/demo.py``)."""

from .report import fmt_duration, results_markdown
from .runs import (
    CONFIG_DIR,
    FULL,
    QUICK,
    TEACHER_CONFIG,
    Demo,
    Method,
    Schedule,
    demo_methods,
    last_checkpoint,
    partition_source,
    run_key,
    schedule_options,
    teacher_key,
)

__all__ = [
    'CONFIG_DIR',
    'FULL',
    'QUICK',
    'TEACHER_CONFIG',
    'Demo',
    'Method',
    'Schedule',
    'demo_methods',
    'last_checkpoint',
    'partition_source',
    'run_key',
    'schedule_options',
    'teacher_key',
    'fmt_duration',
    'results_markdown',
]
