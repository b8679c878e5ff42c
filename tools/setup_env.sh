#!/usr/bin/env bash
# Create or update the project's virtual environment at .venv (idempotent; `make` runs it only when
# constraints.txt, requirements.txt, setup.py or these scripts changed).
#
#   1. .venv from python3.11 (override with PYTHON=/path/to/python)
#   2. torch, torchvision and the build tools mmcv's source build needs
#   3. mmcv with compiled ops: the cached wheel, or a ~15 min build (tools/build_mmcv_wheel.sh)
#   4. mmengine, mmsegmentation and mmpretrain (--no-deps, see requirements.txt), then requirements.txt
#   5. gdkd_seg itself, editable, and an import check
# Every install is pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -c constraints.txt)
log() { echo "[setup_env] $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null || { log "$PYTHON not found: install Python 3.11 or set PYTHON=..."; exit 1; }
    log "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi

log "torch, torchvision and build tools"
"${PIP[@]}" --quiet torch torchvision setuptools wheel ninja

mmcv_version=$(sed -n 's/^mmcv==//p' constraints.txt)
wheel=$(tools/build_mmcv_wheel.sh "$VENV/bin/python" "$mmcv_version" | tail -n 1)
# Reinstall when the wheel changed (e.g. after a torch upgrade): the compiled ops are torch-specific.
if [ "$(cat "$VENV/.mmcv-wheel" 2>/dev/null)" != "$wheel" ]; then
    log "installing $wheel"
    "${PIP[@]}" --quiet --no-deps --force-reinstall "$wheel"
    echo "$wheel" > "$VENV/.mmcv-wheel"
fi

log "mmengine, mmsegmentation, mmpretrain and requirements.txt"
log "(pip may report that mmcv/mmengine require opencv-python: expected, opencv-python-headless provides cv2)"
"${PIP[@]}" --quiet --no-deps mmengine mmsegmentation mmpretrain
"${PIP[@]}" --quiet -r requirements.txt
"${PIP[@]}" --quiet --no-deps --no-build-isolation -e .

"$VENV/bin/python" -c 'import mmcv.ops, mmseg.models, mmpretrain, gdkd_seg; print("[setup_env] ok: torch", __import__("torch").__version__, "mmcv", mmcv.__version__, "mmseg", mmseg.__version__, "mmpretrain", mmpretrain.__version__)'
