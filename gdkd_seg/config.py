"""What a config says, read once: the config file with its options (:func:`load_config`), a model config
given inline, as a file or as ``dict(cfg_path=..., **overrides)`` (:func:`resolve_model_cfg`), and a
distiller's loss declarations (:func:`loss_declarations`). The lowest layer: it imports no other module of
gdkd_seg."""

import copy
import os.path as osp
from typing import Dict, List, Optional, Union

from mmengine.config import Config
from mmengine.hub import get_config

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def load_config(
    path: str, options: Optional[dict] = None, work_dir: Optional[str] = None, launcher: str = 'none'
) -> Config:
    """The config file with ``options`` merged in; ``work_dir`` defaults to ``work_dirs/<config name>``.
    Its text (logged, dumped, saved in checkpoints) is left as Python writes it, not reformatted by yapf,
    which costs seconds per run."""
    cfg = Config.fromfile(path, format_python_code=False)
    cfg.launcher = launcher
    if options:
        cfg.merge_from_dict(dict(options))
    if isinstance(cfg.get('model'), dict) and 'cfg_path' in cfg.model:  # a plain model given by its config file
        cfg.model = resolve_model_cfg(cfg.model)
    for key in DATALOADERS:
        if cfg.get(key):
            push_data_root_to_leaves(cfg[key].get('dataset'))
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def push_data_root_to_leaves(dataset) -> None:
    """A ``data_root`` set on a dataset wrapper (``ConcatDataset``, ``RepeatDataset``: Pascal VOC aug's train set)
    is meant for the data sets it wraps, which take it: ``--cfg-options train_dataloader.dataset.data_root=DIR``
    then works for every data set config."""
    if not isinstance(dataset, dict):
        return
    root = dataset.pop('data_root', None) if ('datasets' in dataset or 'dataset' in dataset) else None
    for child in dataset.get('datasets') or ([dataset['dataset']] if 'dataset' in dataset else []):
        if root is not None and isinstance(child, dict):
            child['data_root'] = root
        push_data_root_to_leaves(child)


def resolve_model_cfg(model: Union[dict, str]) -> dict:
    """A model config given inline, as a config file path, or as ``dict(cfg_path=..., **overrides)``."""
    if isinstance(model, str):
        model = dict(cfg_path=model)
    model = copy.deepcopy(dict(model))
    if 'cfg_path' not in model:
        return model
    path = model.pop('cfg_path')
    base = get_config(path) if '::' in path else Config.fromfile(path)  # 'mmseg::...' lives in mmseg
    cfg = Config(dict(model=resolve_model_cfg(base.model)))  # that file's model may name a cfg_path too
    cfg.merge_from_dict(dict(model=model))
    return cfg.model


DECLARATION_KEYS = ('student', 'teacher', 'loss', 'connector', 'extra_inputs')


def _source(value) -> str:
    """A config value written as Python config source: dicts as ``dict(key=value, ...)``."""
    if isinstance(value, dict):
        return 'dict(' + ', '.join(f'{k}={_source(v)}' for k, v in value.items()) + ')'
    if isinstance(value, (list, tuple)):
        inner = ', '.join(_source(v) for v in value)
        return f'[{inner}]' if isinstance(value, list) else f'({inner}{"," if len(value) == 1 else ""})'
    return repr(value)


def loss_declarations(distill_losses) -> Dict[str, dict]:
    """``{name: declaration}`` from the config's ``distill_losses``; entries set to None are left out (so a
    child config or ``--cfg-options model.distill_losses.aux=None`` drops one)."""
    if distill_losses is None:
        return {}
    if isinstance(distill_losses, (list, tuple)):
        items = [dict(item) for item in distill_losses]
        named = all(isinstance(item.get('name'), str) for item in items)
        example = (
            ',\n'.join(f'        {item.pop("name")}={_source(item)}' for item in items)
            if named
            else "        decode=dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg', loss=dict(...))"
        )
        raise ValueError(
            'model.distill_losses is a list; it is a dict keyed by name, so that _base_ configs merge it and '
            '--cfg-options reach an entry as model.distill_losses.<name>.loss.<arg>=VALUE. Write it as\n'
            f'    distill_losses=dict(\n{example})'
        )
    if not isinstance(distill_losses, dict):
        raise TypeError(f'model.distill_losses must be a dict of loss declarations, got {type(distill_losses)}')
    declarations = {}
    for name, decl in distill_losses.items():
        if decl is None:
            continue
        if 'loss' in name:
            raise ValueError(
                f'model.distill_losses.{name}: a declaration name must not contain "loss" (it is logged as '
                f'distill.{name}.<loss_name>, and MMEngine would add its terms to the total): name it after what '
                "it compares, e.g. 'decode' or 'aux'"
            )
        if not isinstance(decl, dict):
            raise TypeError(
                f'model.distill_losses.{name} must be a dict(student=..., teacher=..., loss=...) or None, got {decl!r}'
            )
        decl = dict(decl)
        unknown = sorted(set(decl) - set(DECLARATION_KEYS))
        missing = [key for key in ('student', 'teacher', 'loss') if key not in decl]
        if unknown or missing:
            raise ValueError(
                f'model.distill_losses.{name}: '
                + '; '.join(
                    ([f'unknown keys {unknown}'] if unknown else []) + ([f'missing {missing}'] if missing else [])
                )
                + f' (a declaration takes {list(DECLARATION_KEYS)})'
            )
        decl['extra_inputs'] = dict(decl.get('extra_inputs') or {})
        declarations[name] = decl
    return declarations


def config_diff(old, new, prefix: str = '') -> List[str]:
    """``key: old -> new`` for every dotted key whose value differs between two config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new), key=str):
            lines += config_diff(
                old.get(key, '<absent>'), new.get(key, '<absent>'), f'{prefix}.{key}' if prefix else key
            )
        return lines
    return [] if old == new else [f'{prefix}: {old!r} -> {new!r}']
