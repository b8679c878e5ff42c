"""The embedded demo: the whole distillation pipeline on digit scenes, on a laptop CPU (``tools/demo.py``)."""

from .report import curve_sets, fmt_duration, results_markdown
from .runs import (
    CONFIG_DIR,
    DEMO,
    FULL,
    QUICK,
    TEACHER_CONFIG,
    Demo,
    Method,
    Schedule,
    demo_methods,
    last_checkpoint,
    partition_source,
    prepare_run_dir,
    pretrained_checkpoints,
    run_key,
    schedule_options,
    teacher_key,
)

__all__ = [
    'CONFIG_DIR',
    'DEMO',
    'FULL',
    'QUICK',
    'TEACHER_CONFIG',
    'Demo',
    'Method',
    'Schedule',
    'demo_methods',
    'last_checkpoint',
    'partition_source',
    'prepare_run_dir',
    'pretrained_checkpoints',
    'run_key',
    'schedule_options',
    'teacher_key',
    'curve_sets',
    'fmt_duration',
    'results_markdown',
]
