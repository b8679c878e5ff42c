"""Exports of trained distillers: the student as a plain MMSeg checkpoint and config, and a classification
student's backbone as the pretrained weights of a segmentor (``tools/export_student.py``,
``tools/export_backbone.py``)."""

import inspect
import io
import os.path as osp
import warnings

import mmengine.registry.root
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, Registry, init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import MODELS

from .config import resolve_model_cfg
from .models.cls_distiller import build_classifier
from .utils import CheckpointMismatchError, atomic_write, check_state_dict_fits, safe_torch_load, state_dict_of

DISTILLERS = ('SegDistiller', 'ClsDistiller')
BACKBONE_PREFIXES = ('student.backbone.', 'backbone.')  # ClsDistiller, then classifiers / segmentors
PACKAGE = 'gdkd_seg'
DROP = object()  # what a config entry that the plain config leaves out becomes


def student_config(cfg: Config) -> Config:
    """The distiller config with ``model`` replaced by the student's, as plain MMSeg (:class:`PlainConfig`)."""
    if cfg.model.get('type') not in DISTILLERS:
        raise ValueError(f'{cfg.filename} is not a distiller config (model.type is {cfg.model.get("type")})')
    cfg = cfg.copy()
    cfg.model = resolve_model_cfg(cfg.model.student)
    plain = PlainConfig()
    out = Config(plain(cfg.to_dict()), filename=cfg.filename)
    set_package_import(out, plain)
    return out


def package_types() -> dict:
    """``{type name: (registry, class)}`` of every class that gdkd_seg registers, in any registry and scope."""
    found = {}
    pending = [r for r in vars(mmengine.registry.root).values() if isinstance(r, Registry)]
    while pending:
        registry = pending.pop()
        pending.extend(registry._children.values())
        for name, cls in registry.module_dict.items():
            if getattr(cls, '__module__', '').split('.')[0] == PACKAGE:
                found[name] = (registry, cls)
    return found


def plain_ancestor(cls: type, registry: Registry):
    """What ``registry`` (or a parent) builds under the name of the nearest base class of ``cls`` that it
    registers from another package: that base or a subclass of it (MMSeg's ``Resize`` for MMCV's); None
    without one."""
    for base in cls.__mro__[1:]:
        found = registry.get(base.__name__)
        if isinstance(found, type) and issubclass(found, base) and found.__module__.split('.')[0] != PACKAGE:
            return found
    return None


class PlainConfig:
    """A config dict without the types that gdkd_seg registers, so that plain MMSeg reads it. Its transforms
    become the MMSeg / MMCV transform they extend (the ``...WithTeacherLogits`` ones) or are left out
    (``CheckSegLabels``, ``LoadTeacherLogits``); a data set that only sets the class names, palette and defaults
    of an MMSeg data set (``DigitScenesDataset``) becomes that data set with them, another is kept and listed in
    ``data_needs``; a type in the model is kept and listed in ``model_needs``; any other (hooks, the loss
    declarations the distiller read, a top-level variable that names such a type) is left out."""

    def __init__(self):
        self.types, self.model_needs, self.data_needs = package_types(), [], []

    def __call__(self, node, where: str = ''):
        if isinstance(node, dict):
            node = self.plain_entry(node, where)
            if node is DROP:
                return DROP
            items = ((key, self(value, f'{where}.{key}'.lstrip('.'))) for key, value in node.items())
            return {key: value for key, value in items if value is not DROP}
        if isinstance(node, (list, tuple)):
            items = (self(value, f'{where}[{i}]') for i, value in enumerate(node))
            return type(node)(value for value in items if value is not DROP)
        top_level_name = isinstance(node, str) and node in self.types and not any(c in where for c in '.[')
        return DROP if top_level_name else node  # e.g. ``dataset_type = 'DigitScenesDataset'``

    def plain_entry(self, node: dict, where: str):
        name = node.get('type').split('.')[-1] if isinstance(node.get('type'), str) else None
        if name not in self.types:
            return node
        registry, cls = self.types[name]
        if where == 'model' or where.startswith(('model.', 'model[')):
            self.model_needs.append(f'{name} ({where})')
            return node
        base = plain_ancestor(cls, registry)
        if registry.name == 'transform':
            return DROP if base is None else dict(node, type=base.__name__)
        if registry.name != 'dataset':
            return DROP
        if base in cls.__mro__ and only_sets_defaults(cls):
            return plain_dataset(node, cls, base)
        self.data_needs.append(f'{name} ({where})')
        return node


def only_sets_defaults(cls: type) -> bool:
    """Whether a class overrides no method of its bases but ``__init__`` (which, by convention, only passes on
    other defaults)."""
    methods = (classmethod, staticmethod, property)
    return not [name for name, v in vars(cls).items() if (callable(v) or isinstance(v, methods)) and name != '__init__']


def plain_dataset(node: dict, cls: type, base: type) -> dict:
    """``node`` of data set ``cls`` as one of ``base``, with the class names, palette and defaults ``cls`` sets."""
    node = dict(node, type=base.__name__)
    defaults = inspect.signature(base.__init__).parameters
    for name, param in inspect.signature(cls.__init__).parameters.items():
        own = param.default
        if own is not param.empty and name not in node and (name not in defaults or defaults[name].default != own):
            node[name] = own
    metainfo = dict(getattr(cls, 'METAINFO', {}), **(node.get('metainfo') or {}))
    if metainfo:
        node['metainfo'] = metainfo
    return node


def set_package_import(cfg: Config, plain: PlainConfig) -> None:
    """Import gdkd_seg only for what still needs it: the model (a failed import then fails), or only data sets (a
    failed import is then ignored, so that the model loads without gdkd_seg); else not at all."""
    custom = dict(cfg.get('custom_imports') or {})
    imports = custom.get('imports', [])
    imports = [name for name in ([imports] if isinstance(imports, str) else imports) if name.split('.')[0] != PACKAGE]
    if plain.model_needs:
        warnings.warn(f'The exported student needs {PACKAGE}: its model uses {", ".join(plain.model_needs)}')
        custom.update(imports=imports + [PACKAGE], allow_failed_imports=False)
    elif plain.data_needs:
        warnings.warn(
            f'The exported student loads without {PACKAGE}, but its data sets need it to be read: '
            + ', '.join(plain.data_needs)
        )
        custom.update(imports=imports + [PACKAGE], allow_failed_imports=True)
    else:
        custom['imports'] = imports
    if custom['imports']:
        cfg.custom_imports = custom
    else:
        cfg.pop('custom_imports', None)


def build_model(model_cfg, cfg: Config):
    """A model from an inline, file or ``mmseg::`` model config, built without weights in the config's default
    scope."""
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        return MODELS.build(resolve_model_cfg(model_cfg))


def build_student(cfg: Config):
    """The student of a distiller config, built without weights (in the config's default scope)."""
    if cfg.model.type == 'ClsDistiller':
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
            return build_classifier(cfg.model.student)
    return build_model(cfg.model.student, cfg)


def student_entries(state_dict: dict) -> dict:
    """The entries of a distiller's state dict under ``student.``, without the prefix (none: an empty dict)."""
    return {k[len('student.') :]: v for k, v in state_dict.items() if k.startswith('student.')}


def export_student(config_path: str, checkpoint_path: str, out_path: str):
    """Write ``out_path`` (the student's state_dict and meta) and ``out_path`` with ``.py`` (a plain config
    of the student), so that ``mmseg.apis.init_model(OUT.py, OUT.pth)`` predicts exactly as the distiller
    does. The student's weights must fit the config's student exactly; nothing is written otherwise, and
    both files are written atomically. Returns both paths."""
    cfg = Config.fromfile(config_path)
    plain = student_config(cfg)
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    state = state_dict_of(ckpt)
    student = student_entries(state)
    if not student:
        raise CheckpointMismatchError(
            f'{checkpoint_path} has no "student." weights: it is not a distiller checkpoint (an exported student '
            'or a plain model already is what export_student writes)'
        )
    check_state_dict_fits(
        build_student(cfg),
        student,
        checkpoint_path,
        f'the student of {config_path}',
        'Export with the distiller config the checkpoint was trained with.',
    )
    meta = dict(ckpt.get('meta', {}))
    meta.pop('cfg', None)
    meta['exported_from'] = osp.abspath(checkpoint_path)
    config_out = osp.splitext(out_path)[0] + '.py'
    buffer = io.BytesIO()
    torch.save(dict(state_dict=student, meta=meta), buffer)
    atomic_write(buffer.getvalue(), out_path)
    atomic_write(plain.pretty_text.encode(), config_out)
    return out_path, config_out


def backbone_state_dict(state_dict: dict, prefix=None) -> dict:
    """The entries under ``prefix`` (found among BACKBONE_PREFIXES when None), without it."""
    if prefix is None:
        prefix = next((p for p in BACKBONE_PREFIXES if any(k.startswith(p) for k in state_dict)), None)
    backbone = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)} if prefix else {}
    if not backbone:
        raise ValueError(
            f'No backbone weights under {prefix or " or ".join(BACKBONE_PREFIXES)!r}; the checkpoint '
            f'keys start like {sorted(state_dict)[:5]}. Pass --prefix for another layout.'
        )
    return backbone


def export_backbone(checkpoint_path: str, out_path: str, prefix=None) -> str:
    """Write the backbone of a classification checkpoint (ClsDistiller or ImageClassifier) under the
    backbone's own keys, as ``open-mmlab://resnet18_v1c`` holds them."""
    ckpt = safe_torch_load(checkpoint_path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    meta = {k: v for k, v in ckpt.get('meta', {}).items() if k in ('epoch', 'iter', 'seed', 'experiment_name')}
    meta['exported_from'] = osp.abspath(checkpoint_path)
    buffer = io.BytesIO()
    torch.save(dict(state_dict=backbone_state_dict(state, prefix), meta=meta), buffer)
    atomic_write(buffer.getvalue(), out_path)
    return out_path


def segmentation_backbone(config_path: str):
    """The backbone of the config's segmentor (``model.student`` for distillers), built without weights."""
    cfg = Config.fromfile(config_path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = cfg.model
    if model.get('type') in DISTILLERS:
        model = model.student
    backbone = dict(resolve_model_cfg(model)['backbone'])
    backbone.pop('pretrained', None)
    backbone.pop('init_cfg', None)
    return MODELS.build(backbone)


def check_backbone_fits(config_path: str, backbone_checkpoint: str):
    """Load ``backbone_checkpoint`` strictly (MMEngine's loader) into the config's segmentation backbone;
    MMEngine raises a RuntimeError listing any missing, unexpected or mis-shaped key."""
    backbone = segmentation_backbone(config_path)
    load_checkpoint(backbone, backbone_checkpoint, map_location='cpu', strict=True, logger='current')
    return backbone
