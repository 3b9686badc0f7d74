"""Inference-only folding of BatchNorm into the convolution before it (one kernel instead of two)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def fold_batchnorm(model: nn.Module, probe_size: int = 64) -> int:
    """Fold each eval-mode BatchNorm that directly consumes a convolution's output into it.

    Pairs are found by running a small probe through the model and watching the call order: a
    BatchNorm is folded only when it is called right after a convolution, on that very tensor,
    and both run once per forward pass. The folded model is then checked against the original
    output on the probe; if they differ (a pair the call order could not see through), every
    change is undone. The model can no longer be trained afterwards.

    Args:
        model: an ``eval()`` model, changed in place.
        probe_size: height and width of the random probe image.

    Returns:
        The number of folded pairs (0 when none were found or the check failed).
    """
    if model.training:
        raise ValueError("fold_batchnorm: call model.eval() first; a model with folded BatchNorm cannot train")
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        return 0  # nothing to fold: no probe pass (a VGG FCN's costs about a second on CPU)
    probe = torch.randn(1, 3, probe_size, probe_size, generator=torch.Generator().manual_seed(0))
    probe = probe.to(next(model.parameters()).device)
    calls: list[tuple[nn.Module, object, object]] = []
    leaves = [m for m in model.modules() if not list(m.children())]

    def record(module: nn.Module, args: tuple, out: object) -> None:
        calls.append((module, args[0] if args else None, out))

    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            expected = model(probe)
    finally:
        for hook in hooks:
            hook.remove()
    pairs = _pairs(calls)
    if not pairs:
        return 0
    owners = {child: (parent, name) for parent in model.modules() for name, child in parent.named_children()}
    undo = []
    for conv, bn in pairs:
        fused = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
        for old, new in ((conv, fused), (bn, nn.Identity())):
            parent, name = owners[old]
            setattr(parent, name, new)
            undo.append((parent, name, old))
    with torch.no_grad():
        got = model(probe)
    scale = expected.abs().max().item() or 1.0
    if not torch.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale):
        for parent, name, old in reversed(undo):
            setattr(parent, name, old)
        return 0
    return len(pairs)


def _pairs(calls: list[tuple[nn.Module, object, object]]) -> list[tuple[nn.Module, nn.Module]]:
    """(conv, bn) pairs called back to back on the same tensor, each module called once."""
    times = {}
    for module, _, _ in calls:
        times[module] = times.get(module, 0) + 1
    pairs = []
    for (first, _, out), (second, arg, _) in zip(calls, calls[1:], strict=False):
        if (
            isinstance(first, CONVS)
            and isinstance(second, nn.BatchNorm2d)
            and second.track_running_stats
            and arg is out
            and times[first] == times[second] == 1
        ):
            pairs.append((first, second))
    return pairs
