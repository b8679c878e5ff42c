"""Cost of distillation per training step: distiller step vs student step + teacher inference forward.

Builds the distiller of a config (default: GDKD, DeepLabV3-R101 -> DeepLabV3-R18 on Cityscapes) with
random weights (SyncBN reverted to BN for the CPU; no teacher checkpoint is read, timing does not depend
on the weights), and times on one random batch, side by side (the candidates take turns in every
repeat):

* ``student``   a training step of the student alone: its own losses, backward, SGD step;
* ``teacher``   the teacher's forward as the distiller runs it (inference mode, optional fp16 /
                channels-last, recorded outputs copied to float32);
* ``distiller`` a training step of the distiller (student losses + teacher forward + distillation
                losses, backward, SGD step), with the fused losses (the default);
* ``distiller-plain`` the same with the losses' plain autograd implementation (``fused=False``);
* ``distiller-cached`` a training step with the teacher's logits cached (``model.teacher_cache``): they come
                with the batch (random ones here, float16 as the cache stores them), no teacher runs.

Prints the median times, ``distiller / (student + teacher)`` (what distillation adds beyond running the
two networks) and ``distiller-cached / student`` (what a cached teacher costs beyond the student's step).
Memory: peak resident memory of one call above the memory before it, each candidate in a fresh
child process (see ``gdkd_seg.utils.memory.peak_extra_bytes``).

Example::

    python tools/benchmark_step.py --batch 2 --crop 128 256 --repeats 7
"""

import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import gdkd_seg  # noqa: F401  (registers the distiller and the losses)
from gdkd_seg.config import load_config
from gdkd_seg.utils.memory import peak_extra_bytes

DEFAULT_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'gdkd_deeplabv3_r101_r18_cityscapes.py'
)
CANDIDATES = ('student', 'teacher', 'distiller', 'distiller-plain', 'distiller-cached')


def build(args):
    init_default_scope('mmseg')
    cfg = load_config(args.config)
    cfg.model.teacher_fp16 = args.teacher_fp16
    cfg.model.teacher_channels_last = args.teacher_channels_last
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.student = revert_sync_batchnorm(model.student)
    revert_sync_batchnorm(model.teacher.model)  # in place below the root: the recorder hooks stay
    model.teacher.loaded = True  # random weights: the step costs the same
    model.train()
    torch.manual_seed(0)
    cached = MODELS.build(dict(cfg.model, teacher_cache='(random logits)'))
    cached.student = revert_sync_batchnorm(cached.student)
    cached.teacher.stride = 8  # what init_weights reads from the cache's manifest
    cached.train()

    num_classes = model.student.decode_head.num_classes
    h, w = args.crop
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(args.batch, 3, h, w, generator=g)
    samples = []
    for _ in range(args.batch):
        label = torch.randint(0, num_classes, (1, h, w), generator=g)
        label[torch.rand(1, h, w, generator=g) < 0.1] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        sample.teacher_logits = PixelData(
            **{
                name.replace('.', '__'): torch.randn(num_classes, -(-h // 8), -(-w // 8), generator=g).half()
                for name in cached.teacher.names
            }
        )
        samples.append(sample)
    return model, cached, inputs, samples


def candidates(model, cached, inputs, samples):
    optimizers = {id(m): torch.optim.SGD(m.parameters(), lr=1e-5, momentum=0.9) for m in (model, cached)}

    def train_step(losses_fn, owner=model):
        # Gradients kept allocated between steps (zeroed in place), so that the memory measured above
        # the state between steps (weights, gradients, momentum) is the step's own.
        optimizer = optimizers[id(owner)]
        optimizer.zero_grad(set_to_none=False)
        loss, _ = owner.parse_losses(losses_fn())
        loss.backward()
        optimizer.step()

    def distiller_step(fused):
        for loss in model.distill_losses.values():
            if hasattr(loss, 'fused'):
                loss.fused = fused
        train_step(lambda: model.loss(inputs, samples))

    return {
        'student': lambda: train_step(lambda: model.student.loss(inputs, samples)),
        'teacher': lambda: model.teacher(inputs),
        'distiller': lambda: distiller_step(True),
        'distiller-plain': lambda: distiller_step(False),
        'distiller-cached': lambda: train_step(lambda: cached.loss(inputs, samples), cached),
    }


def memory_child(args):
    fn = candidates(*build(args))[args.memory_child]
    for _ in range(2):
        fn()
    print(json.dumps(peak_extra_bytes(fn)))


def measure_memory(argv, names):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    result = {}
    for name in names:
        out = subprocess.run(
            [sys.executable, __file__, *argv, '--memory-child', name],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        result[name] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='a SegDistiller config')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--crop', type=int, nargs=2, default=[128, 256], metavar=('H', 'W'))
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--teacher-fp16', action='store_true')
    parser.add_argument('--teacher-channels-last', action='store_true')
    parser.add_argument('--no-memory', action='store_true', help='skip the memory measurement')
    parser.add_argument('--memory-child', choices=CANDIDATES, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args)
    print(
        f'torch {torch.__version__}, {torch.get_num_threads()} threads; {osp.basename(args.config)}, '
        f'batch {args.batch} x 3 x {args.crop[0]} x {args.crop[1]}, teacher fp16={args.teacher_fp16} '
        f'channels_last={args.teacher_channels_last}',
        flush=True,
    )
    cands = candidates(*build(args))
    for name, fn in cands.items():
        start = time.perf_counter()
        for _ in range(args.warmup):
            fn()
        print(f'  warm-up {name}: {time.perf_counter() - start:.1f} s', flush=True)
    times = {name: [] for name in cands}
    for r in range(args.repeats):
        for name, fn in cands.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        print(
            f'  repeat {r + 1}/{args.repeats}: '
            + ', '.join(f'{name} {1e3 * t[-1]:.0f}' for name, t in times.items())
            + ' ms',
            flush=True,
        )
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    memory = {} if args.no_memory else measure_memory(argv, list(cands))
    both = ms['student'] + ms['teacher']
    print('\n| candidate | median ms | this / (student + teacher) | peak extra MiB |')
    print('|---|---:|---:|---:|')
    for name in cands:
        mib = f'{memory[name] / 2**20:.0f}' if name in memory else '-'
        print(f'| {name} | {ms[name]:.1f} | {ms[name] / both:.3f} | {mib} |')
    print(
        f'| student + teacher | {both:.1f} | 1.000 | '
        + (f'{(memory["student"] + memory["teacher"]) / 2**20:.0f} |' if memory else '- |')
    )
    print(
        f'\ndistiller-cached / student: {ms["distiller-cached"] / ms["student"]:.3f} '
        f'(live: distiller / student {ms["distiller"] / ms["student"]:.3f})'
    )


if __name__ == '__main__':
    main()
