"""Feature-only training of a student's backbone (Cooper et al., arXiv 2511.14981).

In feature-only KD the backbone learns from feature losses alone: the decode head (and neck, auxiliary
heads) still learns from the task loss, but on *detached* backbone features, so no logit-based gradient
reaches the backbone. :func:`detach_head_input` arranges that on an unchanged MMSeg segmentor with a
forward hook on its backbone, so the student's config, weights and exported model stay plain MMSeg; the
feature losses read the stage outputs (``backbone.layerN``) recorded inside the backbone, before the hook
detaches its result.
"""

from torch import nn

_HANDLE = '_gdkd_detach_head_input'


def _detach_backbone_output(module, args, output):
    if isinstance(output, (tuple, list)):
        return type(output)(o.detach() for o in output)
    return output.detach()


def detach_head_input(segmentor: nn.Module):
    """Make ``segmentor``'s heads see detached backbone features (in every mode; a no-op for inference).

    Returns the hook's handle (``handle.remove()`` undoes it), or ``None`` when the segmentor is already
    set up.
    """
    backbone = getattr(segmentor, 'backbone', None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f'detach_head_input needs a segmentor with a backbone, got {type(segmentor).__name__}')
    handle = getattr(backbone, _HANDLE, None)
    if handle is not None and handle.id in backbone._forward_hooks:
        return None
    handle = backbone.register_forward_hook(_detach_backbone_output)
    setattr(backbone, _HANDLE, handle)
    return handle
