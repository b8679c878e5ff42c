"""The project's one-way data path: config -> distiller (every network, forward and hook) -> recorded tensors
-> losses (pure functions of tensors); tools are thin wrappers of the package."""

import ast
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS
from torch import nn

import gdkd_seg  # noqa: F401
from gdkd_seg.config import load_config
from gdkd_seg.datasets import prepare_digit_scenes

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = sorted(glob.glob(osp.join(ROOT, 'tools', '*.py')))


# The package's layers, lowest first: a module may import from its own layer and the layers below, never from a
# layer above, and no import chain inside gdkd_seg may come back to where it started (docs/architecture.md).
LAYERS = (
    ('gdkd_seg.config', 'gdkd_seg.utils'),
    ('gdkd_seg.losses', 'gdkd_seg.datasets', 'gdkd_seg.classification', 'gdkd_seg.analysis'),
    ('gdkd_seg.models', 'gdkd_seg.engine', 'gdkd_seg.visualization'),
    ('gdkd_seg.runner', 'gdkd_seg.cache_builder', 'gdkd_seg.export', 'gdkd_seg.deploy'),
    ('gdkd_seg.demo',),
)


def _imported_modules(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield '.' * node.level + (node.module or '')
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def package_modules(root):
    """``{module name: file}`` of every module of the package under ``root``."""
    modules = {}
    for path in glob.glob(osp.join(root, 'gdkd_seg', '**', '*.py'), recursive=True):
        parts = osp.relpath(path, root)[: -len('.py')].split(osp.sep)
        modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return modules


def import_graph(root):
    """``{module: {modules of gdkd_seg it imports}}``, imports inside functions included."""
    modules = package_modules(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.endswith('__init__.py') else name.rpartition('.')[0]
        edges = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom):
                base = package.split('.')[: len(package.split('.')) - node.level + 1] if node.level else []
                target = '.'.join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    edges.add(f'{target}.{alias.name}' if f'{target}.{alias.name}' in modules else target)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 'done'
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module):
    for index, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + '.') for prefix in layer):
            return index
    return None


def upward_imports(graph):
    """``(importer, imported)`` pairs where a module imports from a higher layer (the package root, which
    imports every subpackage to register them, is above all layers)."""
    return [
        (module, imported)
        for module, edges in graph.items()
        if module != 'gdkd_seg'
        for imported in edges
        if layer_of(imported) is not None and layer_of(imported) > layer_of(module)
    ]


def test_every_module_has_a_layer():
    unplaced = [m for m in package_modules(ROOT) if m != 'gdkd_seg' and layer_of(m) is None]
    assert not unplaced, f'declare the layer of {unplaced} in LAYERS'


def test_no_import_cycle_and_no_upward_import():
    graph = import_graph(ROOT)
    assert find_cycle(graph) is None, find_cycle(graph)
    assert not upward_imports(graph)


def test_the_layer_check_catches_a_planted_cycle(tmp_path):
    shutil.copytree(osp.join(ROOT, 'gdkd_seg'), tmp_path / 'gdkd_seg')
    with open(tmp_path / 'gdkd_seg' / 'losses' / 'kd_loss.py', 'a') as f:
        f.write('\n\ndef _planted():\n    from ..visualization import partitions  # noqa\n')
    graph = import_graph(str(tmp_path))
    cycle = find_cycle(graph)
    assert cycle is not None and {'gdkd_seg.losses.kd_loss', 'gdkd_seg.visualization.partitions'} <= set(cycle)
    assert ('gdkd_seg.losses.kd_loss', 'gdkd_seg.visualization.partitions') in upward_imports(graph)


def _registers(path):
    return 'register_module(' in open(path).read()


def _init_imports(init_path):
    """The modules a package's ``__init__`` imports from the package itself (``from .x import`` and
    ``from . import x``)."""
    names = set()
    for node in ast.walk(ast.parse(open(init_path).read())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.update([node.module.split('.')[0]] if node.module else [a.name for a in node.names])
    return names


def test_every_registered_class_is_imported_by_its_package():
    discovers = lambda init: 'pkgutil.iter_modules' in open(init).read()  # noqa: E731
    for name, path in package_modules(ROOT).items():
        if path.endswith('__init__.py') or not _registers(path):
            continue
        package, _, module = name.rpartition('.')
        init = osp.join(osp.dirname(path), '__init__.py')
        found = module in _init_imports(init) or (discovers(init) and module.endswith('_loss'))
        assert found, f'{name} registers classes, but {init} does not import it'
        top = package.split('.')[1]
        assert top in _init_imports(osp.join(ROOT, 'gdkd_seg', '__init__.py')), top


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


NEW_LOSS_FILE = """
from mmseg.registry import MODELS

from gdkd_seg.losses import LogitDistillLoss


@MODELS.register_module()
class SquaredLogitLoss(LogitDistillLoss):
    def per_position(self, zs, zt, labels):
        diff = zs - zt
        return dict(sq=diff.square().mean(dim=1), abs=diff.abs().mean(dim=1))
"""

NEW_METHOD_CONFIG = """
_base_ = ['{root}/configs/demo/_base_/distill.py']
custom_imports = dict(imports=['gdkd_seg', 'squared_logit_loss'], allow_failed_imports=False)
model = dict(distill_losses=dict(decode=dict(loss=dict(type='SquaredLogitLoss'))))
"""


@pytest.mark.slow
def test_a_new_method_is_one_file_and_one_config(tmp_path):
    """A loss file and a config that puts it on the demo's method-neutral base, both written here, train through
    tools/train.py; the loss adds to the total once, its terms are logged beside it."""
    (tmp_path / 'squared_logit_loss.py').write_text(NEW_LOSS_FILE)
    (tmp_path / 'method.py').write_text(NEW_METHOD_CONFIG.format(root=ROOT))
    data = prepare_digit_scenes(str(tmp_path / 'scenes'), num_train=6, num_val=4)[0]
    teacher_cfg = load_config(osp.join(ROOT, 'configs', 'demo', 'teacher_deeplabv3_r18w32_digits.py'))
    torch.save({'state_dict': MODELS.build(teacher_cfg.model).state_dict()}, tmp_path / 'teacher.pth')
    options = [
        f'model.teacher_checkpoint={tmp_path / "teacher.pth"}',
        f'train_dataloader.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'test_dataloader.dataset.data_root={data}',
        'train_dataloader.batch_size=2',
        'train_cfg.max_iters=2',
        'default_hooks.logger.interval=1',
    ]
    command = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), str(tmp_path / 'method.py')]
    command += ['--work-dir', str(tmp_path / 'work'), '--cfg-options', *options]
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = [
        json.loads(line)
        for line in glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' / 'scalars.json'))
        for line in open(line)
    ]
    # step 1: the totals are averaged over the logging window, the terms logged as they are
    step = next(row for row in logged if row.get('step') == 1 and 'loss' in row)
    assert {
        'distill.decode.loss_squaredlogit',
        'distill.decode.squaredlogit_sq',
        'distill.decode.squaredlogit_abs',
    } <= set(step)
    summed = sum(v for k, v in step.items() if 'loss' in k and k != 'loss')
    assert step['loss'] == pytest.approx(summed, rel=1e-3)
    assert step['distill.decode.loss_squaredlogit'] == pytest.approx(
        step['distill.decode.squaredlogit_sq'] + step['distill.decode.squaredlogit_abs'], rel=1e-3
    )


def test_term_keys_and_declaration_names_never_double_count():
    from gdkd_seg.config import loss_declarations
    from gdkd_seg.models.distiller_base import check_loss_name, term_key

    with pytest.raises(ValueError, match='must not contain "loss"'):
        loss_declarations(dict(loss_decode=dict(student='a', teacher='b', loss=dict(type='KDLoss'))))
    kd = MODELS.build(dict(type='KDLoss'))
    assert kd.loss_name == 'loss_kd' and term_key('decode', kd, 'kd') == 'distill.decode.kd_kd'
    with pytest.raises(ValueError, match='term names must not contain "loss"'):
        term_key('decode', kd, 'loss_extra')
    with pytest.raises(ValueError, match='does not contain "loss"'):
        check_loss_name('decode', MODELS.build(dict(type='KDLoss', loss_name='kd')))


@pytest.mark.slow
def test_every_tool_runs_as_a_script():
    for path in TOOLS:
        result = subprocess.run([sys.executable, path, '--help'], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and 'usage:' in result.stdout, (path, result.stderr[-2000:])


def test_tests_share_helpers_through_one_module():
    for path in glob.glob(osp.join(ROOT, 'tests', 'test_*.py')):
        imported = [m for m in _imported_modules(path) if m.split('.')[0].startswith('test_')]
        assert not imported, f'{path} imports the test modules {imported}: move what they share to tests/helpers.py'


def test_no_function_of_the_package_runs_over_60_lines():
    long = []
    for path in glob.glob(osp.join(ROOT, 'gdkd_seg', '**', '*.py'), recursive=True):
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f'{osp.relpath(path, ROOT)}:{node.lineno} {node.name}')
    assert not long, f'split these functions: {long}'
