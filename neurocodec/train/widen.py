"""A trained network's weights inside a wider network of the same layout, computing what it did.

Each tensor's old part is copied to the leading slice of the new one. New units (outputs) keep
the wider network's fresh initialization, so they compute something and get gradients; the
weights from new units into old ones start at zero, so every old unit, and so the network's
output, is what it was. Training then finds a use for the new units. `--hidden` (idf) and
`--width` (hyperprior, context) resume a model this way.
"""

from __future__ import annotations

import torch
from torch import nn


def embed(old: torch.Tensor, fresh: torch.Tensor, out_axis: int = 0) -> torch.Tensor:
    """`old` in the leading slice of `fresh` (the wider layer's initial tensor); for a weight,
    the new inputs of old outputs (along `out_axis`) zero."""
    if old.shape == fresh.shape:
        return old
    if old.dim() != fresh.dim() or any(o > n for o, n in zip(old.shape, fresh.shape)):
        raise ValueError(f"{tuple(old.shape)} does not fit in {tuple(fresh.shape)}")
    w = fresh.clone()
    if w.dim() > 1:
        old_outputs = [slice(None)] * w.dim()
        old_outputs[out_axis] = slice(0, old.shape[out_axis])
        w[tuple(old_outputs)] = 0
    w[tuple(slice(0, n) for n in old.shape)] = old
    return w


def widen(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """`state` (of a network as wide as `model` or narrower) embedded in `model`'s own freshly
    built tensors; keys `model` does not have pass through. A transposed convolution's weight
    has its outputs on axis 1."""
    fresh = model.state_dict()
    transposed = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.ConvTranspose2d)}
    out = {}
    for k, v in state.items():
        try:
            out[k] = embed(v, fresh[k], 1 if k in transposed else 0) if k in fresh else v
        except ValueError as e:
            raise ValueError(f"{k}: {e}") from None
    return out
