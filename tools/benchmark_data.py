"""Per-sample cost of a cached distiller's train pipeline against the student's own.

A distiller trained from the teacher cache (``model.teacher_cache``) loads each image's cached logits and
samples them for the augmented crop; with a small student on a CPU that work is no longer small next to the
training step. For a config, side by side in one process (the candidates take turns within every repeat, so
machine load hits them alike), the time of ``dataset[i]`` over the same ``--samples`` train images:

* ``student``      the config's train pipeline without the cache (what the student alone runs);
* ``cached-disk``  with the cache, every file read from disk (``LoadTeacherLogits(memory_mb=0)``);
* ``cached``       with the cache as training uses it: files kept in memory once read (the default
                   ``memory_mb``), timed after one pass over the samples, as in every epoch after the first.

Printed: median ms per sample over ``--repeats`` and the ratio to ``student``. Batching, the model's step and
the loss are not counted (``tools/benchmark_step.py`` times the step).

Example::

    python tools/benchmark_data.py configs/demo/kd_cached_deeplabv3_fcn_digits.py \\
        --cfg-options model.teacher_cache=work_dirs/demo/teacher_cache/T model.teacher_checkpoint=T.pth
"""

import argparse
import copy
import statistics
import time

from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from gdkd_seg.config import load_config
from gdkd_seg.datasets.teacher_cache import use_teacher_cache

CANDIDATES = ('student', 'cached-disk', 'cached')


def datasets(config: str, options: dict) -> dict:
    """The config's train data set without and with the cache (from disk / kept in memory)."""
    plain = load_config(config, options)
    init_default_scope(plain.get('default_scope', 'mmseg'))
    if not plain.model.get('teacher_cache'):
        raise SystemExit(f'{config} trains from no teacher cache: give model.teacher_cache=DIR in --cfg-options')
    cached = load_config(config, options)
    use_teacher_cache(cached, config)  # checks the cache (hashing the teacher checkpoint) once
    from_disk = copy.deepcopy(cached.train_dataloader.dataset)
    for transform in from_disk.pipeline:
        if transform['type'] == 'LoadTeacherLogits':
            transform['memory_mb'] = 0
    return {
        'student': DATASETS.build(plain.train_dataloader.dataset),
        'cached-disk': DATASETS.build(from_disk),
        'cached': DATASETS.build(cached.train_dataloader.dataset),
    }


def time_per_sample(dataset, indices) -> float:
    start = time.perf_counter()
    for i in indices:
        dataset[i]
    return (time.perf_counter() - start) / len(indices)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a SegDistiller config that trains from a teacher cache')
    parser.add_argument('--samples', type=int, default=800, help='train images per timing')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    built = datasets(args.config, args.cfg_options)
    indices = range(min(args.samples, len(built['student'])))
    for dataset in built.values():  # warm-up; fills the in-memory cache
        time_per_sample(dataset, indices)
    times = {name: [] for name in CANDIDATES}
    for _ in range(args.repeats):
        for name in CANDIDATES:
            times[name].append(time_per_sample(built[name], indices))
    base = statistics.median(times['student'])
    print(f'{args.config}: {len(indices)} train samples, median of {args.repeats}')
    print(f'{"pipeline":<12} {"ms/sample":>10} {"x student":>10}')
    for name in CANDIDATES:
        median = statistics.median(times[name])
        print(f'{name:<12} {median * 1e3:>10.3f} {median / base:>10.3f}')
    return times


if __name__ == '__main__':
    main()
