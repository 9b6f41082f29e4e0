"""Exact integer arithmetic for the networks whose outputs feed an entropy coder.

An entropy decoder must rebuild bit for bit the distributions the encoder used, on any
machine, thread count, batch shape or device. Float convolutions do not: they sum in an order
that depends on all of these. So a network that parameterizes a coder is written once, with
the layers below, and run in one of two modes:

- float mode (the default): ordinary torch layers, for training;
- exact mode (`with exact_mode():`): activations are integers `value * 2**ACT_BITS` held in
  float64, weights are rounded to `WEIGHT_BITS` fractional bits, and every layer rounds its
  output back to the activation grid. Each product is an integer and every partial sum stays
  below 2**53 (activations are clamped to +-`ACT_LIMIT`, and `check_exact` bounds the weights),
  so a convolution's result does not depend on the order of its sums.

The weights are rounded from the float weights at load time (float16/float32 -> float64 and a
power-of-two scaling are exact), so a codec ships ordinary float weights.

`fixed_exp` and `fixed_sigmoid` are table lookups on a 2**-`TABLE_BITS` grid whose entries are
rounded to 2**-`TABLE_FRAC`; they turn exact network outputs into exact distribution
parameters.
"""

from __future__ import annotations

import contextlib
import math
import threading

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHT_BITS = 16  # fractional bits of weights
ACT_BITS = 12  # fractional bits of activations
ONE = float(2**ACT_BITS)  # the value 1.0 in exact mode
ACT_LIMIT = float(2**22)  # |activation| <= 1024.0, clamped in exact mode
EXACT_LIMIT = 2.0**52
LEAKY_SLOPE = 0.125  # a power of two, so the exact leaky ReLU is a shift
TABLE_BITS = 8  # lookup tables are indexed on a 2**-8 grid ...
TABLE_FRAC = 24  # ... and their entries rounded to 2**-24

_state = threading.local()


@contextlib.contextmanager
def exact_mode():
    """Inside this block the layers of this module compute in exact integer arithmetic."""
    old = getattr(_state, "on", False)
    _state.on = True
    try:
        yield
    finally:
        _state.on = old


def is_exact() -> bool:
    return getattr(_state, "on", False)


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """Float values on the 2**-ACT_BITS grid -> exact-mode integers (float64)."""
    return torch.round(x.double() * ONE)


def from_fixed(x: torch.Tensor) -> torch.Tensor:
    return x / ONE


class _ExactConv:
    """What exact Conv2d and ConvTranspose2d share: integer weights rounded from the float
    ones on first use, and the rounding of an accumulator back to the activation grid.

    `clamp=True` (the default) clamps activations to +-ACT_LIMIT, which with the weight bound
    checked at load keeps every partial sum exact. `clamp=False` keeps compressai-style
    networks exact as they were trained (no clamp) and instead checks every result at run
    time: an accumulator at or beyond 2**52 raises OverflowError.
    """

    def _init_exact(self, mask: torch.Tensor | None, clamp: bool) -> None:
        self.register_buffer("mask", mask, persistent=False)
        self.clamp = clamp
        self._exact: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def masked_weight(self) -> torch.Tensor:
        return self.weight if self.mask is None else self.weight * self.mask

    def exact_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Integer weights and biases (float64), rounded from the float ones on first use."""
        if self._exact is None:
            with torch.no_grad():
                w = torch.round(self.masked_weight().double() * 2**WEIGHT_BITS)
                b = None if self.bias is None else torch.round(self.bias.double() * 2 ** (WEIGHT_BITS + ACT_BITS))
            if self.clamp:
                fan_in = w.abs().transpose(0, 1).flatten(1).sum(1).max().item() if self.transposed else \
                    w.abs().flatten(1).sum(1).max().item()
                if fan_in * ACT_LIMIT + (0 if b is None else b.abs().max().item()) >= EXACT_LIMIT:
                    raise ValueError("weights too large for exact float64 accumulation")
            self._exact = (w, b)
        return self._exact

    def _round(self, acc: torch.Tensor, b: torch.Tensor | None, inplace: bool = False) -> torch.Tensor:
        """The accumulator plus the bias, back on the activation grid (in `acc` itself with
        `inplace`: a layer's own fresh result). Every step is exact on integers, so doing
        them in place changes no value."""
        if b is not None:
            acc = acc.add_(b[None, :, None, None]) if inplace else acc + b[None, :, None, None]
        if not self.clamp and acc.numel() and acc.abs().max() >= EXACT_LIMIT:
            raise OverflowError("an exact layer left the exact integer range")
        out = acc.mul_(2.0**-WEIGHT_BITS) if inplace or b is not None else acc * 2.0**-WEIGHT_BITS
        out.add_(0.5).floor_()
        return out.clamp_(-ACT_LIMIT, ACT_LIMIT) if self.clamp else out

    def forget_exact(self) -> None:
        """Drop the rounded weights (after the float weights changed)."""
        self._exact = None

    def _apply(self, fn, *args, **kwargs):
        self._exact = None
        return super()._apply(fn, *args, **kwargs)


class Conv2d(_ExactConv, nn.Conv2d):
    """nn.Conv2d, with an optional fixed mask on its weight (for causal convolutions)."""

    def __init__(self, *args, mask: torch.Tensor | None = None, clamp: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_exact(mask, clamp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_exact():
            return self._conv_forward(x, self.masked_weight(), self.bias)
        w, b = self.exact_weights()
        if x.shape[2:] == w.shape[2:] and self.padding in ((0, 0), "valid") and self.groups == 1:
            # one output per input window (a batch of neighbourhoods): a plain matrix product
            return self._round(F.linear(x.flatten(1), w.flatten(1))[:, :, None, None], b, inplace=True)
        return self._round(F.conv2d(x, w, None, self.stride, self.padding, self.dilation, self.groups), b, inplace=True)


class ConvTranspose2d(_ExactConv, nn.ConvTranspose2d):
    """nn.ConvTranspose2d that runs exactly in exact mode."""

    def __init__(self, *args, clamp: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_exact(None, clamp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_exact():
            return super().forward(x)
        w, b = self.exact_weights()
        acc = F.conv_transpose2d(x, w, None, self.stride, self.padding, self.output_padding, self.groups, self.dilation)
        return self._round(acc, b, inplace=True)


def leaky_relu(x: torch.Tensor, slope: float = LEAKY_SLOPE) -> torch.Tensor:
    """LeakyReLU (slope 1/8 unless given), rounded back to the grid in exact mode."""
    if not is_exact():
        return F.leaky_relu(x, slope)
    # max(x, floor(x * slope + 1/2)) is x for integers x >= 0 and the rounded product below
    # zero, for any slope in [0, 1]: two passes over memory instead of five
    t = (x * slope).add_(0.5).floor_()
    return torch.maximum(x, t, out=t)


class LeakyReLU(nn.Module):
    def __init__(self, slope: float = LEAKY_SLOPE):
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return leaky_relu(x, self.slope)


def from_torch(module: nn.Module, clamp: bool = False) -> nn.Module:
    """An exact copy of a plain torch network made of Conv2d, ConvTranspose2d, LeakyReLU and
    ReLU layers (in Sequentials): the same weights, run exactly in exact mode. `clamp=False`
    keeps its arithmetic unclamped and checked (`_ExactConv`)."""
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(from_torch(m, clamp) for m in module))
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        kind = ConvTranspose2d if isinstance(module, nn.ConvTranspose2d) else Conv2d
        kw = dict(stride=module.stride, padding=module.padding, dilation=module.dilation, groups=module.groups,
                  bias=module.bias is not None, clamp=clamp)
        if kind is ConvTranspose2d:
            kw["output_padding"] = module.output_padding
        layer = kind(module.in_channels, module.out_channels, module.kernel_size, **kw)
        layer.load_state_dict(module.state_dict())
        return layer
    if isinstance(module, nn.LeakyReLU):
        return LeakyReLU(module.negative_slope)
    if isinstance(module, nn.ReLU):
        return LeakyReLU(0.0)
    raise TypeError(f"no exact version of {type(module).__name__}")


def forget_exact(module: nn.Module) -> None:
    """Drop every cached integer weight in `module` (call after loading new float weights)."""
    for m in module.modules():
        if isinstance(m, _ExactConv):
            m.forget_exact()


# --- lookup tables for distribution parameters ---------------------------------------


def _table(fn, lo: float, hi: float) -> torch.Tensor:
    n_lo, n_hi = round(lo * 2**TABLE_BITS), round(hi * 2**TABLE_BITS)
    return torch.tensor(
        [round(fn(k / 2**TABLE_BITS) * 2**TABLE_FRAC) / 2**TABLE_FRAC for k in range(n_lo, n_hi + 1)],
        dtype=torch.float64,
    )


EXP_RANGE = (-12.0, 12.0)
SIGMOID_RANGE = 16.0
_EXP = _table(math.exp, *EXP_RANGE)
_SIGMOID = _table(lambda v: 1.0 / (1.0 + math.exp(-v)), -SIGMOID_RANGE, SIGMOID_RANGE)
_SIGMOID_BY_DTYPE = {torch.float64: _SIGMOID, torch.float32: _SIGMOID.float()}  # entries in [0, 1] on 2**-24: exact in float32


def _lookup(table: torch.Tensor, x: torch.Tensor, lo: float, shift: int) -> torch.Tensor:
    """table[round(x * 2**-shift) - lo * 2**TABLE_BITS], the index clamped to the table."""
    idx = (x * 2.0**-shift + (0.5 - lo * 2**TABLE_BITS)).clamp_(0, table.numel() - 1).long()  # >= 0: trunc = floor
    return torch.take(table, idx)


def fixed_exp(x: torch.Tensor) -> torch.Tensor:
    """exp(x / ONE) for exact-mode integers `x`, from a table: exact and machine-independent.
    Arguments are rounded to 2**-8 and clamped to EXP_RANGE."""
    return _lookup(_EXP, x, EXP_RANGE[0], ACT_BITS - TABLE_BITS)


def sigmoid_index(x: torch.Tensor) -> torch.Tensor:
    """Float table positions -> `fixed_sigmoid_at` indices (rounded, clamped), in place."""
    return x.add_(0.5 + SIGMOID_RANGE * 2**TABLE_BITS).clamp_(0, _SIGMOID.numel() - 1).long()


def fixed_sigmoid_at(index: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """The sigmoid table at integer positions from `sigmoid_index` (position k: sigmoid(k/256))."""
    return torch.take(_SIGMOID_BY_DTYPE[dtype], index)  # a flat gather, 3x faster than indexing


def fixed_sigmoid(x: torch.Tensor, frac_bits: int = ACT_BITS) -> torch.Tensor:
    """sigmoid(x * 2**-frac_bits) from a table (arguments rounded to 2**-8, clamped to +-16,
    where the table ends at its extreme entries)."""
    return _lookup(_SIGMOID_BY_DTYPE.get(x.dtype, _SIGMOID), x, -SIGMOID_RANGE, frac_bits - TABLE_BITS)


def probabilities(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Unnormalized probabilities exp(logit - max) of exact-mode logits, from the fixed exp
    table: the same numbers on every machine, ready for `entropy.Categorical` (which
    normalizes them identically everywhere). Differences below -12 nats are clamped there."""
    return fixed_exp(logits - logits.max(dim=dim, keepdim=True).values)
