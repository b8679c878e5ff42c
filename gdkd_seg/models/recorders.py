"""Recorders: capture what named submodules output during a forward pass (MMRazor's idea, lighter)."""
from contextlib import contextmanager

from torch import nn


class ModuleOutputRecorder:
    """Keeps the latest output of each named submodule of ``model``, through forward hooks, while
    :meth:`recording` is active (so other forwards of the same modules, such as validation or the stepping
    stones' runs of the teacher's head, neither overwrite nor hold on to what was recorded).

    Names are those of ``model.named_modules()``, e.g. ``'decode_head.conv_seg'`` (logits at 1/8
    resolution), ``'auxiliary_head.conv_seg'`` or ``'backbone.layer3'`` (features).
    """

    def __init__(self, model: nn.Module, names):
        modules = dict(model.named_modules())
        self.names = list(dict.fromkeys(names))
        self.outputs = {}
        self.active = False
        self._handles = []
        for name in self.names:
            if name not in modules:
                near = [m for m in modules if m and m.split('.')[0] == name.split('.')[0]][:8]
                raise KeyError(f'{type(model).__name__} has no submodule {name!r} to record; '
                               f'modules under the same parent include {near}')
            self._handles.append(modules[name].register_forward_hook(self._make_hook(name)))

    def _make_hook(self, name):
        def hook(module, args, output):
            if self.active:
                self.outputs[name] = output
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
