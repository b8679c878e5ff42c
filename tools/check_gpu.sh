#!/usr/bin/env bash
# One command for a GPU machine: build the environment (CPU mmcv ops, as everywhere; a few minutes with
# the wheel cached or many cores), then the checks that need a GPU (tools/check_gpu.py: the fused loss
# against the plain one on CUDA with and without torch.compile, 20 iterations with --amp, torchrun with
# NCCL and SyncBN) and the loss benchmark on the GPU (speed-up, log-softmax and bandwidth-floor ratios).
#
#   bash tools/check_gpu.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK_DIR=${1:-work_dirs/check_gpu}
start=$(date +%s)
make env
.venv/bin/python tools/check_gpu.py --work-dir "$WORK_DIR"
.venv/bin/python tools/benchmark_losses.py --device cuda --repeats 21
echo "[check_gpu] done in $(( $(date +%s) - start )) s"
