"""ONNX export of students (the demo's FCN and a Cityscapes config's DeepLabV3-R18, random weights, small
inputs) held equal in onnxruntime to PyTorch and to MMSeg's own preprocessing; the refusals (missing folder,
another architecture's checkpoint, an opset the model cannot use, an mmcv op); the teacher-versus-student cost
table."""

import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers import tiny_segmentor
from mmengine.config import Config
from mmseg.apis import inference_model
from mmseg.registry import MODELS

from gdkd_seg.config import resolve_model_cfg
from gdkd_seg.datasets.digit_scenes import prepare_digit_scenes
from gdkd_seg.deploy import (
    DEFAULT_OPSET,
    OnnxExportError,
    OnnxParityError,
    PixelsToLogits,
    cost_table_markdown,
    export_graph,
    export_onnx,
    load_student,
    model_cost,
    synthetic_image,
    to_batch,
)
from gdkd_seg.utils import CheckpointMismatchError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo', 'gdkd_deeplabv3_fcn_digits.py')
CITYSCAPES = osp.join(ROOT, 'configs', 'gdkd_deeplabv3_r101_r18_cityscapes.py')
MAX_ABS_DIFF = 1e-4  # float32 logits of these small models; the export is refused only on the argmax


@pytest.fixture(scope='module')
def digit_images(tmp_path_factory):
    """Three real demo scenes (handwritten digits), the images the demo student is checked on."""
    root = str(tmp_path_factory.mktemp('digit_scenes'))
    prepare_digit_scenes(root, num_train=1, num_val=3)
    return osp.join(root, 'img_dir', 'val')


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """A distiller-style checkpoint of the demo student: random weights under ``student.``."""
    torch.manual_seed(0)
    student, _ = load_student(DEMO)
    path = str(tmp_path_factory.mktemp('ckpt') / 'iter_1.pth')
    torch.save({'state_dict': {f'student.{k}': v for k, v in student.state_dict().items()}, 'meta': {}}, path)
    return path


@pytest.fixture(scope='module')
def demo_export(tmp_path_factory, digit_images, demo_checkpoint):
    out = str(tmp_path_factory.mktemp('onnx') / 'student.onnx')
    return out, export_onnx(DEMO, demo_checkpoint, out, images=[digit_images])


def _held_opset(path):
    return {o.domain or 'ai.onnx': o.version for o in onnx.load(path).opset_import}['ai.onnx']


def test_demo_student_exports_with_dynamic_axes_and_matches_pytorch(demo_export):
    out, report = demo_export
    onnx.checker.check_model(out)
    assert _held_opset(out) == report.opset == DEFAULT_OPSET
    assert report.dynamic_axes == ('batch', 'height', 'width')
    assert report.normalization_in_graph and report.bgr_to_rgb_in_graph
    # three real scenes, a batch of two, another image size
    assert len(report.cases) == 5 and {c.shape for c in report.cases} >= {(1, 3, 64, 64), (2, 3, 64, 64)}
    assert report.max_abs_diff < MAX_ABS_DIFF and report.argmax_agreement >= 0.999
    assert not [f for f in os.listdir(osp.dirname(out)) if '.tmp-' in f]


def test_demo_onnx_equals_mmseg_preprocessing_and_tensor_mode(demo_export, demo_checkpoint, digit_images):
    """The graph holds the data preprocessor: raw pixels in onnxruntime give what MMSeg's preprocessor and
    tensor mode give in PyTorch, at a size the export never saw."""
    out, _ = demo_export
    student, _ = load_student(DEMO, demo_checkpoint)
    pixels = synthetic_image((40, 72), seed=3)  # HxWx3 uint8, as mmcv.imread gives
    data = student.data_preprocessor(dict(inputs=[torch.from_numpy(pixels.transpose(2, 0, 1).copy())]), False)
    with torch.no_grad():
        expected = student(data['inputs'], mode='tensor').numpy()
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    got = session.run(None, {'pixels': to_batch(pixels.astype(np.float32))})[0]
    assert got.shape == expected.shape == (1, 11, 5, 9)
    assert np.abs(got - expected).max() < MAX_ABS_DIFF
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.999


def test_the_documented_recipe_predicts_the_labels_mmseg_predicts(demo_export, demo_checkpoint, digit_images):
    """docs/deploy.md: logits resized bilinearly to the image, argmax = mmseg.apis.inference_model's labels."""
    out, _ = demo_export
    path = osp.join(digit_images, sorted(os.listdir(digit_images))[0])
    img = cv2.imread(path)
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    logits = session.run(None, {'pixels': img.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
    logits = cv2.resize(logits.transpose(1, 2, 0), img.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    student, _ = load_student(DEMO, demo_checkpoint)
    student.cfg = Config(dict(test_pipeline=[dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]))
    expected = inference_model(student, path).pred_sem_seg.data[0].numpy()
    assert (logits.argmax(-1) == expected).mean() >= 0.999


def test_cityscapes_student_exports_on_a_synthetic_image(tmp_path):
    """DeepLabV3-R18 of the Cityscapes GDKD config (no Cityscapes data here: a synthetic 64x128 image)."""
    out = str(tmp_path / 'r18.onnx')
    report = export_onnx(CITYSCAPES, None, out, size=(64, 128))
    assert osp.isfile(out) and report.dynamic_axes == ('batch', 'height', 'width')
    assert report.cases[0].name == 'synthetic 64x128'
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    assert session.get_outputs()[0].shape[1] == 19
    assert report.max_abs_diff < MAX_ABS_DIFF and report.argmax_agreement >= 0.999


def test_a_missing_folder_is_refused_before_any_work(tmp_path):
    out = tmp_path / 'no' / 'such' / 'student.onnx'
    with pytest.raises(FileNotFoundError, match=r'does not exist.*mkdir -p'):
        export_onnx(DEMO, None, str(out), size=(64, 64))
    assert not (tmp_path / 'no').exists()


def test_a_checkpoint_of_another_architecture_is_refused_and_nothing_written(tmp_path):
    torch.save({'state_dict': MODELS.build(tiny_segmentor(3, width=8)).state_dict()}, tmp_path / 'other.pth')
    out = tmp_path / 'student.onnx'
    out.write_bytes(b'the previous export')
    with pytest.raises(CheckpointMismatchError, match=r'(?s)does not fit the student of .*backbone\.stem\.0\.weight'):
        export_onnx(DEMO, str(tmp_path / 'other.pth'), str(out), size=(64, 64))
    assert out.read_bytes() == b'the previous export'
    assert sorted(os.listdir(tmp_path)) == ['other.pth', 'student.onnx']


def test_an_opset_the_model_cannot_use_is_refused(tmp_path):
    out = tmp_path / 'student.onnx'
    with pytest.raises(OnnxExportError, match=r'opset 3 is outside .*--opset 18'):
        export_onnx(DEMO, None, str(out), opset=3, size=(64, 64))
    # opset 9 is in ONNX's range, but onnx's version converter cannot take the exporter's opset-18 graph down to it
    with pytest.raises(OnnxExportError, match=r'cannot be exported at opset 9.*Use --opset 18'):
        export_onnx(DEMO, None, str(out), opset=9, size=(64, 64))
    assert os.listdir(tmp_path) == []


def test_a_disagreeing_runtime_is_refused_and_the_previous_file_kept(tmp_path):
    """An agreement threshold no export can meet stands in for a graph that onnxruntime runs differently."""
    out = tmp_path / 'student.onnx'
    out.write_bytes(b'the previous export')
    with pytest.raises(OnnxParityError, match=r'(?s)Refused to write .*argmax agreement 100\.0000% \(at least 101\.0%'):
        export_onnx(DEMO, None, str(out), size=(64, 64), min_agreement=1.01)
    assert out.read_bytes() == b'the previous export' and os.listdir(tmp_path) == ['student.onnx']


@pytest.mark.slow
def test_an_mmcv_op_is_named_with_what_to_do(tmp_path):
    cfg = tiny_segmentor(3, width=8)
    cfg.backbone.update(depth=50, dcn=dict(type='DCNv2', deform_groups=1), stage_with_dcn=(False, False, False, True))
    cfg.decode_head.in_channels = 256
    module = PixelsToLogits(MODELS.build(cfg).eval())
    example = to_batch(synthetic_image((64, 64)), synthetic_image((64, 64), seed=1))
    with pytest.raises(
        OnnxExportError, match=r'mmcv compiled ops.*backbone\.layer4\.0\.conv2 \(ModulatedDeformConv2dPack\)'
    ):
        export_graph(module, example, str(tmp_path / 'dcn.onnx'))


def test_cost_table_of_the_demo_pair(single_thread):
    report = model_cost(DEMO, size=(64, 64), runs=2, warmup=1)
    teacher, student = report.rows
    cfg = Config.fromfile(DEMO)
    for row, model_cfg in ((teacher, cfg.model.teacher), (student, cfg.model.student)):
        model = MODELS.build(resolve_model_cfg(model_cfg))
        assert row.params == sum(p.numel() for p in model.parameters()) and row.aux_params == 0
        assert row.flops > 0 and row.torch_ms > 0 and row.ort_ms > 0
    assert (teacher.role, student.role) == ('teacher', 'student')
    assert teacher.params > student.params and teacher.flops > student.flops
    assert report.threads == 1
    table = cost_table_markdown(report, command='python tools/model_cost.py ...')
    assert '| teacher | ResNetV1c-18 + ASPPHead | random |' in table
    assert '| student | ResNetV1c-18 + FCNHead | random |' in table
    assert 'GFLOPs at 64x64' in table and 'with 1 thread,' in table and 'Command:' in table


@pytest.mark.slow
def test_export_onnx_tool_end_to_end(tmp_path, digit_images, demo_checkpoint):
    """The command line on an exported student (plain keys) with the plain config, as users run it."""
    from gdkd_seg.export import export_student

    pth, config = export_student(DEMO, demo_checkpoint, str(tmp_path / 'student.pth'))
    out = tmp_path / 'student.onnx'
    result = subprocess.run(
        [sys.executable, 'tools/export_onnx.py', config, pth, '--out', str(out), '--images', digit_images],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    agreement = re.search(r'argmax agreement ([\d.]+)%', result.stdout)
    assert out.is_file() and agreement and float(agreement.group(1)) >= 99.9, result.stdout
