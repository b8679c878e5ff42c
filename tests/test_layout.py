"""The project's one-way data path: config -> distiller (every network, forward and hook) -> recorded tensors
-> losses (pure functions of tensors); tools are thin wrappers of the package."""

import ast
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from torch import nn
from toy import tiny_segmentor

import gdkd_seg  # noqa: F401
from gdkd_seg.losses import LogitDistillLoss

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = sorted(glob.glob(osp.join(ROOT, 'tools', '*.py')))


def _imported_modules(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield '.' * node.level + (node.module or '')
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_losses_never_import_the_models():
    for path in glob.glob(osp.join(ROOT, 'gdkd_seg', 'losses', '*.py')):
        for module in _imported_modules(path):
            assert 'models' not in module.split('.') or module.startswith('mmseg'), (path, module)


def test_tools_are_thin_wrappers_without_path_tricks():
    for path in TOOLS:
        text = open(path).read()
        assert 'sys.path' not in text and 'importlib' not in text, path


def _network_modules(model):
    teacher = model.teacher.model  # None when the teacher's logits are cached
    return {id(m) for m in (*model.student.modules(), *(teacher.modules() if teacher is not None else ()))}


def _held_modules(module):
    """Every nn.Module a module reaches: its submodules and any module held as a plain attribute."""
    for sub in module.modules():
        yield sub
        for value in vars(sub).values():
            if isinstance(value, nn.Module):
                yield value
            elif isinstance(value, (list, tuple)):
                yield from (v for v in value if isinstance(v, nn.Module))


def test_no_loss_of_any_method_holds_a_network():
    # the demo's configs (small models) cover every method; the Cityscapes ones are the same declarations
    configs = sorted(
        glob.glob(osp.join(ROOT, 'configs', 'demo', '*.py'))
        + glob.glob(osp.join(ROOT, 'configs', 'classification', '*digits.py'))
    )
    distillers = 0
    for path in configs:
        cfg = Config.fromfile(path)
        if cfg.model.type not in ('SegDistiller', 'ClsDistiller'):
            continue
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
            model = MODELS.build(cfg.model)
        networks = _network_modules(model)
        for name, loss in model.distill_losses.items():
            assert not any(id(m) in networks for m in _held_modules(loss)), (path, name)
        distillers += 1
    assert distillers >= 10


@MODELS.register_module()
class _SquaredLogitLoss(LogitDistillLoss):
    """A new logit method in a few lines: the mean squared difference of the logits."""

    def per_position(self, zs, zt, labels):
        return dict(mse=(zs - zt).square().mean(dim=1))


def test_a_new_logit_method_is_one_class_and_one_declaration(tmp_path):
    teacher = MODELS.build(tiny_segmentor(3, width=16))
    torch.save({'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')
    model = MODELS.build(
        dict(
            type='SegDistiller',
            student=tiny_segmentor(3, width=8),
            teacher=tiny_segmentor(3, width=16),
            teacher_checkpoint=str(tmp_path / 'teacher.pth'),
            distill_losses=dict(
                decode=dict(
                    student='decode_head.conv_seg',
                    teacher='decode_head.conv_seg',
                    loss=dict(type='_SquaredLogitLoss', loss_weight=2.0, loss_name='loss_sq'),
                )
            ),
        )
    )
    model.init_weights()
    from test_distiller import _batch

    inputs, samples = _batch()
    losses = model(inputs, samples, mode='loss')
    zs = model.student_recorder['decode_head.conv_seg']
    zt = model.teacher(inputs)['decode_head.conv_seg']
    gt = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    labels = torch.nn.functional.interpolate(gt[:, None].float(), size=zs.shape[-2:], mode='nearest')[:, 0]
    valid = labels != 255
    expected = 2.0 * (zs - zt).square().mean(dim=1)[valid].mean()
    torch.testing.assert_close(losses['distill.decode.loss_sq'], expected)


@pytest.mark.slow
def test_every_tool_runs_as_a_script():
    for path in TOOLS:
        result = subprocess.run([sys.executable, path, '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and 'usage:' in result.stdout, (path, result.stderr[-2000:])
