"""Torch twins of the discretized distributions: the code length a training loss minimizes
is the one the coder pays (unit bins, the outermost bins taking the tails)."""

from __future__ import annotations

import math

import torch


def _bin_bits(cdf, x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    upper = torch.where(x >= hi, torch.ones_like(x), cdf((x + 0.5 - mean) / scale))
    lower = torch.where(x <= lo, torch.zeros_like(x), cdf((x - 0.5 - mean) / scale))
    return -torch.log2((upper - lower).clamp_min(1e-9))


def _laplace_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 + 0.5 * torch.sign(z) * -torch.expm1(-z.abs())


def _gaussian_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-z / math.sqrt(2))


def laplace_bits(x, mean, scale, lo: int, hi: int) -> torch.Tensor:
    """-log2 P(x) of integer `x` under `DiscretizedLaplace(mean, scale, lo, hi)`, elementwise."""
    return _bin_bits(_laplace_cdf, x, mean, scale, lo, hi)


def gaussian_bits(x, mean, scale, lo: int, hi: int) -> torch.Tensor:
    """-log2 P(x) of integer `x` under `DiscretizedGaussian(mean, scale, lo, hi)`, elementwise."""
    return _bin_bits(_gaussian_cdf, x, mean, scale, lo, hi)
