"""Forward+backward time and peak memory of the pixel-wise GDKD / DKD losses.

For each logit shape and loss, side by side in one process (the candidates take turns within every
repeat, so machine load hits them alike):

* ``fused``         the default loss (``GDKDLoss()`` / ``DKDLoss()``): fused kernels, compiled with
                    torch.compile above ``COMPILE_MIN_NUMEL`` values;
* ``fused-eager``   the same kernels without compilation (the fallback where compiling fails);
* ``plain``         the library's autograd implementation (``fused=False``), the reference of the tests;
* ``unfused``       a straightforward research-style implementation written below (two softmaxes, masks,
                    a ``-1000`` masked softmax per group, separate KLs, on permuted ``(P, C)`` rows);
* ``log_softmax``   compute floor: one ``torch.log_softmax`` over the class dimension of the logits;
* ``bandwidth``     memory-bandwidth floor: ``torch.add`` of two logit-sized tensors (reads 2, writes 1).

Time: median over ``--repeats`` of one call (forward + backward for the losses), after warm-up calls
(which include the one-off compilation). Memory: peak resident memory during one call above the resident
memory before it (inputs excluded, the gradient included), each candidate in a fresh child process after
two warm-up calls, with glibc's ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors leave the process
and the resident size follows the live tensors; the peak is Linux's VmHWM, reset through
/proc/self/clear_refs (see ``peak_extra_bytes``).

Example::

    python tools/benchmark_losses.py                       # the three default shapes, GDKD and DKD
    python tools/benchmark_losses.py --shapes 16,19,64,128 --losses gdkd --repeats 9
    python tools/benchmark_losses.py --device cuda          # on a GPU (memory from CUDA's allocator)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import gdkd_seg  # noqa: F401  (registers the losses)
from gdkd_seg.losses import DKDLoss, GDKDLoss
from gdkd_seg.losses.fused import COMPILE_MIN_NUMEL
from gdkd_seg.utils.memory import peak_extra_bytes

IGNORE = 255
GDKD_ARGS = dict(topk=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0)
DKD_ARGS = dict(alpha=1.0, beta=2.0, temperature=1.0)


# ----------------------------------------------------------------------------
# the research-style reference (mdistiller's DKD, extended to GDKD's groups)
# ----------------------------------------------------------------------------
def _one_hot_mask(logits, index):
    return torch.zeros_like(logits).scatter_(1, index, 1).bool()


def _cat_mask(t, mask1, mask2):
    t1 = (t * mask1).sum(dim=1, keepdims=True)
    t2 = (t * mask2).sum(dim=1, keepdims=True)
    return torch.cat([t1, t2], dim=1)


def _rows(student, teacher, gt):
    num_classes = student.shape[1]
    s = student.permute(0, 2, 3, 1).reshape(-1, num_classes)
    t = teacher.permute(0, 2, 3, 1).reshape(-1, num_classes)
    gt = gt.reshape(-1)
    valid = gt != IGNORE
    return s[valid], t[valid], gt[valid]


def _two_group_terms(s, t, mask_a, mask_b, temperature):
    pred_s = F.softmax(s / temperature, dim=1)
    pred_t = F.softmax(t / temperature, dim=1)
    b_s = _cat_mask(pred_s, mask_a, mask_b)
    b_t = _cat_mask(pred_t, mask_a, mask_b)
    t2 = temperature**2
    high = F.kl_div(torch.log(b_s), b_t, reduction='batchmean') * t2
    within = []
    for outside in (mask_b, mask_a):
        p_t = F.softmax(t / temperature - 1000.0 * outside, dim=1)
        log_p_s = F.log_softmax(s / temperature - 1000.0 * outside, dim=1)
        within.append(F.kl_div(log_p_s, p_t, reduction='batchmean') * t2)
    return high, within[0], within[1]


def unfused_gdkd(student, teacher, gt, topk, w0, w1, w2, temperature):
    s, t, _ = _rows(student, teacher, gt)
    top = _one_hot_mask(t, t.topk(topk, dim=1).indices)
    high, in_top, in_other = _two_group_terms(s, t, top, ~top, temperature)
    return w0 * high + w1 * in_top + w2 * in_other


def unfused_dkd(student, teacher, gt, alpha, beta, temperature):
    s, t, labels = _rows(student, teacher, gt)
    gt_mask = _one_hot_mask(s, labels.unsqueeze(1))
    tckd, _, nckd = _two_group_terms(s, t, gt_mask, ~gt_mask, temperature)
    return alpha * tckd + beta * nckd


# ----------------------------------------------------------------------------
# measurement
# ----------------------------------------------------------------------------
def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def cuda_peak_extra_bytes(fn):
    """Peak CUDA memory allocated during ``fn()`` above what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def measure_memory(shape, loss_name, skip, device='cpu'):
    """Peak extra memory of every candidate: on the GPU from CUDA's allocator statistics, on the CPU each in a
    fresh child process."""
    if device.startswith('cuda'):
        cands = candidates(loss_name, *make_inputs(shape, device))
        return {name: cuda_peak_extra_bytes(fn) for name, fn in cands.items() if name not in skip}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
    result = {}
    for name in candidates(loss_name, *make_inputs(shape)):
        if name in skip:
            continue
        out = subprocess.run(
            [sys.executable, __file__, '--memory-child', ','.join(map(str, shape)), loss_name, name],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        result[name] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def memory_child(shape, loss_name, name):
    fn = candidates(loss_name, *make_inputs(shape))[name]
    for _ in range(2):  # compile, allocate lazily created state
        fn()
    print(json.dumps(peak_extra_bytes(fn)))


def make_inputs(shape, device='cpu'):
    n, c, h, w = shape
    g = torch.Generator().manual_seed(0)
    zs = (2 * torch.randn(shape, generator=g)).to(device).requires_grad_()
    zt = (2 * torch.randn(shape, generator=g)).to(device)
    gt = torch.randint(0, c, (n, h, w), generator=g)
    gt[torch.rand(n, h, w, generator=g) < 0.1] = IGNORE  # 10 % ignored pixels
    return zs, zt, gt.to(device)


def candidates(loss_name, zs, zt, gt):
    """name -> callable doing one forward+backward (or one floor op)."""
    if loss_name == 'gdkd':
        loss_type, kwargs, unfused = GDKDLoss, GDKD_ARGS, unfused_gdkd
    else:
        loss_type, kwargs, unfused = DKDLoss, DKD_ARGS, unfused_dkd
    fused = loss_type(**kwargs)
    plain = loss_type(fused=False, **kwargs)

    def backward(loss):
        loss.backward()
        zs.grad = None

    def fused_eager():
        os.environ['GDKD_SEG_COMPILE'] = '0'  # the documented switch to the eager kernels
        try:
            backward(fused(zs, zt, gt))
        finally:
            del os.environ['GDKD_SEG_COMPILE']

    return {
        'fused': lambda: backward(fused(zs, zt, gt)),
        'fused-eager': fused_eager,
        'plain': lambda: backward(plain(zs, zt, gt)),
        'unfused': lambda: backward(unfused(zs, zt, gt, **kwargs)),
        'log_softmax': lambda: torch.log_softmax(zt, dim=1),
        'bandwidth': lambda: torch.add(zs.detach(), zt),
    }


def check_same_loss(loss_name, zs, zt, gt):
    """The unfused reference computes the same loss as the library (printed, as a sanity check)."""
    with torch.no_grad():
        if loss_name == 'gdkd':
            ours, ref = GDKDLoss(**GDKD_ARGS)(zs, zt, gt), unfused_gdkd(zs, zt, gt, **GDKD_ARGS)
        else:
            ours, ref = DKDLoss(**DKD_ARGS)(zs, zt, gt), unfused_dkd(zs, zt, gt, **DKD_ARGS)
    return float(ours), float(ref)


def bench_shape(shape, losses, repeats, warmup, skip, device='cpu'):
    zs, zt, gt = make_inputs(shape, device)
    rows = []
    for loss_name in losses:
        ours, ref = check_same_loss(loss_name, zs, zt, gt)
        print(f'[{loss_name} {list(shape)}] loss: library {ours:.6f}, unfused reference {ref:.6f}', flush=True)
        cands = {k: v for k, v in candidates(loss_name, zs, zt, gt).items() if k not in skip}
        for name, fn in cands.items():
            start = time.perf_counter()
            for _ in range(warmup):
                fn()
            print(f'  warm-up {name}: {time.perf_counter() - start:.1f} s', flush=True)
        times = {name: [] for name in cands}
        for r in range(repeats):
            for name, fn in cands.items():  # interleaved: load hits every candidate alike
                sync(device)
                start = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - start)
            print(
                f'  repeat {r + 1}/{repeats}: '
                + ', '.join(f'{name} {1e3 * t[-1]:.0f}' for name, t in times.items())
                + ' ms',
                flush=True,
            )
        memory = measure_memory(shape, loss_name, skip, device)
        for name in cands:
            rows.append(
                dict(
                    shape=shape,
                    loss=loss_name,
                    name=name,
                    ms=1e3 * statistics.median(times[name]),
                    mb=memory[name] / 2**20,
                )
            )
    return rows


def print_table(rows):
    header = (
        '| shape | loss | candidate | median ms | unfused / this | this / log_softmax | '
        'this / bandwidth | peak extra MiB | this / unfused memory |'
    )
    print('\n' + header)
    print('|---|---|---|---:|---:|---:|---:|---:|---:|')
    for r in rows:
        same = {x['name']: x for x in rows if x['shape'] == r['shape'] and x['loss'] == r['loss']}

        def ratio(a, b, key):
            return f'{a[key] / b[key]:.2f}' if b and b[key] > 0 else '-'

        unfused, lsm, bw = same.get('unfused'), same.get('log_softmax'), same.get('bandwidth')
        speedup = f'{unfused["ms"] / r["ms"]:.1f}x' if unfused else '-'
        print(
            f'| {",".join(map(str, r["shape"]))} | {r["loss"]} | {r["name"]} | {r["ms"]:.1f} | {speedup} | '
            f'{ratio(r, lsm, "ms")} | {ratio(r, bw, "ms")} | {r["mb"]:.1f} | {ratio(r, unfused, "mb")} |'
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    # Cityscapes at full resolution and in small crops; ADE20K's 150 classes (batch 8 of 512x512 at 1/4)
    parser.add_argument(
        '--shapes', nargs='+', default=['2,19,512,1024', '16,19,64,128', '8,150,128,128'], help='logit shapes N,C,H,W'
    )
    parser.add_argument('--losses', nargs='+', default=['gdkd', 'dkd'], choices=['gdkd', 'dkd'])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--skip', nargs='*', default=[], help='candidates to leave out, e.g. fused-eager plain')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (memory: CUDA allocator peaks)')
    parser.add_argument(
        '--memory-child', nargs=3, metavar=('SHAPE', 'LOSS', 'CANDIDATE'), help=argparse.SUPPRESS
    )  # internal: one memory measurement
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        shape, loss_name, name = args.memory_child
        return memory_child(tuple(int(x) for x in shape.split(',')), loss_name, name)
    where = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith('cuda')
        else f'{torch.get_num_threads()} threads'
    )
    print(f'torch {torch.__version__}, {where}, compile above {COMPILE_MIN_NUMEL} values', flush=True)
    rows = []
    for shape in args.shapes:
        rows += bench_shape(
            tuple(int(x) for x in shape.split(',')), args.losses, args.repeats, args.warmup, set(args.skip), args.device
        )
    print_table(rows)


if __name__ == '__main__':
    main()
