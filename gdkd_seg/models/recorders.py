"""Recorders: capture what named submodules output during a forward pass (MMRazor's idea, lighter)."""

import re
from contextlib import contextmanager
from typing import Optional, Tuple

from torch import nn

_OUTPUT_ELEMENT = re.compile(r'^(?P<module>[^:]*):(?P<index>\d+)$')


def parse_record_name(name: str) -> Tuple[str, Optional[int]]:
    """``'backbone:3'`` -> ``('backbone', 3)`` (element 3 of the module's output); ``'backbone.layer3'`` ->
    ``('backbone.layer3', None)`` (the module's output itself)."""
    if ':' not in name:
        return name, None
    match = _OUTPUT_ELEMENT.match(name)
    if not match:
        raise ValueError(
            f"Cannot record {name!r}: write a module name ('backbone.layer3') or a module name and "
            "the index of one element of its tuple output ('backbone:3')"
        )
    return match['module'], int(match['index'])


CONTAINERS = (nn.ModuleList, nn.ModuleDict)


def _calling_ancestor(modules: dict, name: str) -> str:
    """The nearest module above ``name`` that is not a container, i.e. the one that runs its parts."""
    while '.' in name:
        name = name.rsplit('.', 1)[0]
        if not isinstance(modules[name], CONTAINERS):
            return name
    return '<module>'


class ModuleOutputRecorder:
    """Keeps the latest output of each named submodule of ``model``, through forward hooks, while
    :meth:`recording` is active (so other forwards of the same modules, such as validation or the stepping
    stones' runs of the teacher's head, neither overwrite nor hold on to what was recorded).

    Names are those of ``model.named_modules()``, e.g. ``'decode_head.conv_seg'`` (logits at 1/8
    resolution), ``'auxiliary_head.conv_seg'`` or ``'backbone.layer3'`` (features), or a module name and an
    index, ``'backbone:3'``: element 3 of the tuple that module outputs. The latter reaches stage outputs of
    backbones that run their stages by hand instead of calling them (MixVisionTransformer iterates over the
    parts of ``layers[i]``, so ``backbone.layers.3`` is never called and a hook on it never fires); the index
    counts the backbone's outputs, i.e. its ``out_indices``.

    The hooks run before any other forward hook of the module (``prepend``), so the recorder sees what the
    module computed, not what a later hook makes of it (``detach_head_input`` detaches the backbone's output
    for the heads; the feature losses still read the undetached stages).
    """

    def __init__(self, model: nn.Module, names):
        modules = dict(model.named_modules())
        self.names = list(dict.fromkeys(names))
        self.outputs = {}
        self.active = False
        self._handles = []
        for name in self.names:
            module_name, index = parse_record_name(name)
            if module_name not in modules:
                near = [m for m in modules if m and m.split('.')[0] == module_name.split('.')[0]][:8]
                raise KeyError(
                    f'{type(model).__name__} has no submodule {module_name!r} to record; '
                    f'modules under the same parent include {near}'
                )
            module = modules[module_name]
            if isinstance(module, CONTAINERS):
                parent = _calling_ancestor(modules, module_name)
                raise ValueError(
                    f'Cannot record {name!r}: {module_name} is a {type(module).__name__}, a container that is never '
                    'called (its parent runs the parts by hand), so a hook on it never fires. Record an element '
                    f"of the parent's output instead, e.g. '{parent}:<index>' (MixVisionTransformer: "
                    "'backbone:0' .. 'backbone:3' for its stages), or a module inside it that is called"
                )
            self._handles.append(module.register_forward_hook(self._make_hook(name, index), prepend=True))

    def _make_hook(self, name, index):
        def hook(module, args, output):
            if not self.active:
                return
            if index is None:
                self.outputs[name] = output
                return
            if not isinstance(output, (tuple, list)):
                raise RuntimeError(
                    f'Cannot record {name!r}: {type(module).__name__} outputs a single '
                    f'{type(output).__name__}, not a tuple to take element {index} of; record the '
                    'module itself (its name without the index)'
                )
            if index >= len(output):
                raise RuntimeError(
                    f'Cannot record {name!r}: {type(module).__name__} outputs {len(output)} '
                    f'elements, so the index must lie in 0..{len(output) - 1}'
                )
            self.outputs[name] = output[index]

        return hook

    @contextmanager
    def recording(self):
        """Forget the last outputs, then record the forwards run inside the ``with`` block."""
        self.outputs.clear()
        self.active = True
        try:
            yield self
        finally:
            self.active = False

    def __getitem__(self, name):
        if name not in self.outputs:
            raise RuntimeError(f'{name!r} was not called in the last forward pass, so nothing was recorded')
        return self.outputs[name]

    def clear(self):
        self.outputs.clear()

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
