#!/usr/bin/env bash
# Build (once) and print the path of an mmcv wheel with compiled ops for the torch in $PYTHON.
#
# Why: mmcv 2.1.0 (the newest mmsegmentation 1.2.2 accepts) has no prebuilt wheel on PyPI for current
# torch, and its setup.py hard-codes `-std=c++17`, while torch >= 2.10 headers need C++20. We take the
# registry's source distribution, delete mmcv's hard-coded `-std=...` flags so that torch's own
# BuildExtension adds the standard the installed torch needs, and build with MMCV_WITH_OPS=1.
#
# Which ops: the CPU ops, on every machine. DeepLabV3, PSPNet, SegFormer and the other models here use no
# mmcv CUDA op, and mmcv's setup.py builds its CUDA extension whenever torch sees a GPU, toolkit or not
# (pip's CUDA torch on a machine without nvcc then fails), so the GPUs are hidden from the build. Set
# GDKD_MMCV_CUDA=1 to build the CUDA ops too (needs nvcc; TORCH_CUDA_ARCH_LIST picks the GPU architectures).
#
# The wheel is cached outside the repo, keyed by mmcv, torch (with its CUDA tag), Python and the ops
# flavour, so a second virtualenv, a CI run or a fresh clone reuses it in seconds:
#   ${GDKD_WHEEL_CACHE:-~/.cache/gdkd_seg/wheels}/mmcv-<ver>_torch-<ver>_<pytag>_<cpu|cuXY>/mmcv-*.whl
#
# Usage: [GDKD_MMCV_CUDA=1] tools/build_mmcv_wheel.sh PYTHON MMCV_VERSION   (prints the wheel path last)
set -euo pipefail

PYTHON=${1:?usage: build_mmcv_wheel.sh PYTHON MMCV_VERSION}
MMCV_VERSION=${2:?usage: build_mmcv_wheel.sh PYTHON MMCV_VERSION}
CACHE_ROOT=${GDKD_WHEEL_CACHE:-$HOME/.cache/gdkd_seg/wheels}

if [ "${GDKD_MMCV_CUDA:-0}" = "1" ]; then
    command -v nvcc >/dev/null 2>&1 || { echo "[build_mmcv] GDKD_MMCV_CUDA=1 needs the CUDA toolkit (nvcc)" >&2; exit 1; }
    export FORCE_CUDA=1
    ops_flavour=$("$PYTHON" -c 'import torch; print("cu" + (torch.version.cuda or "none").replace(".", ""))')
    [ "$ops_flavour" != "cunone" ] || { echo "[build_mmcv] GDKD_MMCV_CUDA=1 needs a CUDA build of torch" >&2; exit 1; }
else
    export FORCE_CUDA=0
    export CUDA_VISIBLE_DEVICES=""  # mmcv's setup.py builds CUDA ops whenever torch sees a GPU
    ops_flavour=cpu
fi
torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__)')
py_tag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
wheel_dir="$CACHE_ROOT/mmcv-${MMCV_VERSION}_torch-${torch_version}_${py_tag}_${ops_flavour}"

cached=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$cached" ]; then
    echo "[build_mmcv] using cached wheel" >&2
    echo "$cached"
    exit 0
fi

echo "[build_mmcv] no cached wheel in $wheel_dir: building mmcv $MMCV_VERSION from source" \
     "(ops: $ops_flavour; about 15 minutes on 2 cores)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The source distribution's metadata step imports torch and pkg_resources, so it runs in this
# environment (no build isolation), which must already hold torch and setuptools<81.
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "mmcv==$MMCV_VERSION" -d "$work" >&2
tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
src="$work/mmcv-$MMCV_VERSION"

# Drop every hard-coded C++ standard ('-std=c++14/17', '/std:c++14/17'); torch's BuildExtension then
# appends the one its headers need (it only adds -std when none is given).
sed -i -E "s#'(-|/)std[=:]c\+\+1[47]'##g" "$src/setup.py"
if grep -Eq "'(-|/)std[=:]c\+\+1[47]'" "$src/setup.py"; then
    echo "[build_mmcv] could not remove the hard-coded C++ standard from mmcv's setup.py" >&2
    exit 1
fi

export MMCV_WITH_OPS=1
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
mkdir -p "$wheel_dir"
"$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$work/dist" "$src" >&2
mv "$work"/dist/mmcv-*.whl "$wheel_dir"/
ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1
