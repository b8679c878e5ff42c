"""gdkd-seg: knowledge distillation for semantic segmentation on MMSegmentation.

Dependencies are pinned in constraints.txt and installed by tools/setup_env.sh (`make env`): mmcv has
to be built from source for current torch, and the OpenMMLab packages go in with --no-deps so that
opencv-python-headless is the only OpenCV. Hence no install_requires here.
"""

from setuptools import find_packages, setup

setup(
    name='gdkd_seg',
    version='0.1.0',
    description='Generalized Decoupled Knowledge Distillation (and peers) for MMSegmentation',
    packages=find_packages(include=['gdkd_seg', 'gdkd_seg.*']),
    python_requires='>=3.10',
    # ONNX export and the cost table (tools/export_onnx.py, tools/model_cost.py); `make env` installs them too
    extras_require={'deploy': ['onnx', 'onnxruntime', 'onnxscript']},
)
