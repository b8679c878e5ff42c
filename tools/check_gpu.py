"""Checks that need a GPU (run by tools/check_gpu.sh; exits 1 when one fails).

    python tools/check_gpu.py [--work-dir work_dirs/check_gpu]

1. the fused GDKD / DKD loss against the plain one on CUDA: values and gradients, with the eager kernels and
   with torch.compile (Triton);
2. a tiny distiller (the demo's GDKD config on a few generated digit scenes, random teacher) trained for 20
   iterations with --amp;
3. the same through ``torchrun --nproc_per_node=1`` with NCCL and SyncBN.
"""

import argparse
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from gdkd_seg import runner
from gdkd_seg.datasets import prepare_digit_scenes
from gdkd_seg.demo import TEACHER_CONFIG
from gdkd_seg.losses import DKDLoss, GDKDLoss

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
GDKD_CONFIG = osp.join(REPO, 'configs', 'demo', 'gdkd_deeplabv3_fcn_digits.py')


def check_fused_on_cuda(failures):
    g = torch.Generator().manual_seed(0)
    zs = (2 * torch.randn(2, 19, 128, 256, generator=g)).cuda()
    zt = (2 * torch.randn(2, 19, 128, 256, generator=g)).cuda()
    gt = torch.randint(0, 19, (2, 128, 256), generator=g)
    gt[torch.rand(2, 128, 256, generator=g) < 0.1] = 255
    gt = gt.cuda()
    for loss_type, kwargs in ((GDKDLoss, dict(topk=3)), (DKDLoss, {})):
        reference = None
        for mode, compile_flag, fused in (
            ('plain', '1', False),
            ('fused eager', '0', True),
            ('fused compiled', '1', True),
        ):
            os.environ['GDKD_SEG_COMPILE'] = compile_flag
            student = zs.clone().requires_grad_()
            value = loss_type(fused=fused, **kwargs)(student, zt, gt)
            value.backward()
            torch.cuda.synchronize()
            if reference is None:
                reference = (value.detach(), student.grad)
                continue
            dv = (value.detach() - reference[0]).abs().item()
            dg = ((student.grad - reference[1]).abs().max() / reference[1].abs().max()).item()
            ok = dv <= 1e-5 * max(1.0, reference[0].abs().item()) and dg <= 1e-4
            print(
                f'{loss_type.__name__} {mode} vs plain on CUDA: value diff {dv:.2e}, relative grad diff {dg:.2e}'
                f' {"ok" if ok else "MISMATCH"}',
                flush=True,
            )
            if not ok:
                failures.append(f'{loss_type.__name__} {mode}')
    os.environ.pop('GDKD_SEG_COMPILE', None)


def tiny_run_options(work_dir):
    data = prepare_digit_scenes(osp.join(work_dir, 'data'), num_train=64, num_val=16)[0]
    init_default_scope('mmseg')
    teacher = MODELS.build(Config.fromfile(TEACHER_CONFIG).model)
    checkpoint = osp.join(work_dir, 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, checkpoint)
    options = {f'{split}_dataloader.dataset.data_root': data for split in ('train', 'val', 'test')}
    options.update(
        {
            'train_cfg.max_iters': 20,
            'train_cfg.val_interval': 20,
            'param_scheduler.0.end': 20,
            'default_hooks.checkpoint.interval': 20,
            'default_hooks.logger.interval': 5,
            'model.teacher_checkpoint': checkpoint,
        }
    )
    return options


def finite_losses(work_dir):
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    logged = [json.loads(line) for line in open(scalars[0])] if scalars else []
    values = [v for s in logged for k, v in s.items() if 'loss' in k]
    return bool(values) and all(math.isfinite(v) for v in values) and osp.isfile(osp.join(work_dir, 'iter_20.pth'))


def check_amp_training(options, work_dir, failures):
    run_dir = osp.join(work_dir, 'amp')
    runner.train(GDKD_CONFIG, options, work_dir=run_dir, amp=True)
    ok = finite_losses(run_dir)
    print(f'20 iterations with --amp: {"ok" if ok else "FAILED"}', flush=True)
    if not ok:
        failures.append('amp training')


def check_torchrun_nccl_syncbn(options, work_dir, failures):
    run_dir = osp.join(work_dir, 'torchrun')
    syncbn = {f'model.student.{part}.norm_cfg.type': 'SyncBN' for part in ('backbone', 'decode_head')}
    argv = [f'{k}={v}' for k, v in dict(options, **syncbn, **{'env_cfg.dist_cfg.backend': 'nccl'}).items()]
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node=1',
            '--master_port=29531',
            osp.join(REPO, 'tools', 'train.py'),
            GDKD_CONFIG,
            '--launcher',
            'pytorch',
            '--work-dir',
            run_dir,
            '--cfg-options',
            *argv,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    ok = result.returncode == 0 and finite_losses(run_dir)
    print(f'torchrun --nproc_per_node=1, NCCL, SyncBN: {"ok" if ok else "FAILED"}', flush=True)
    if not ok:
        print(result.stdout[-3000:] + result.stderr[-3000:])
        failures.append('torchrun NCCL SyncBN')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/check_gpu')
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit('tools/check_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False)')
    print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}', flush=True)
    failures = []
    check_fused_on_cuda(failures)
    options = tiny_run_options(args.work_dir)
    check_amp_training(options, args.work_dir, failures)
    check_torchrun_nccl_syncbn(options, args.work_dir, failures)
    if failures:
        sys.exit(f'GPU checks failed: {failures}')
    print('all GPU checks passed')


if __name__ == '__main__':
    main()
