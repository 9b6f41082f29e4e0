"""Steps for the tensors a model works with: latents on a grid of bins, pixels under a
distribution computed by an exact-mode network. Latents are torch tensors in exact
mode's fixed point (`neurocodec.exact`: value * exact.ONE in float64), so a network's outputs
go straight in and its inputs come straight out.

    GaussianLatent(mean, log_scale)    a latent under a Gaussian (posterior or conditional prior)
    GaussianLatent.standard(shape)     the same under N(0, 1)
    Pixels(mean, log_scale)            an 8-bit image (uint8 values) under a Laplace per sub-pixel

A latent's bins are `bin` wide (a power of two, so every bin is a point of the fixed-point
grid) and reach +-`half_range` bins; posterior and prior must use the same bins.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import exact
from ..entropy import DiscretizedGaussian, DiscretizedLaplace
from .steps import Step


class _TensorStep(Step):
    def __init__(self, dist, shape, to_symbols, from_symbols, name):
        self.dist, self.shape, self.name = dist, tuple(shape), name
        self._to, self._from = to_symbols, from_symbols

    def push(self, stream, value):
        with stream.at(self.name):
            stream.push(self._to(value).ravel(), self.dist)

    def pop(self, stream):
        with stream.at(self.name):
            return self._from(stream.pop(self.dist).reshape(self.shape))


class GaussianLatent(_TensorStep):
    def __init__(self, mean: torch.Tensor, log_scale: torch.Tensor, bin: float = 2.0**-4, half_range: int = 512,
                 name: str = "latent"):
        unit = exact.ONE * bin
        dist = DiscretizedGaussian((mean / unit).numpy().ravel(), (exact.fixed_exp(log_scale) / bin).numpy().ravel(),
                                   -half_range, half_range)
        super().__init__(dist, mean.shape, lambda z: torch.round(z / unit).numpy().astype(np.int64),
                         lambda idx: torch.from_numpy(idx.astype(np.float64)) * unit, name)

    @classmethod
    def standard(cls, shape: tuple, bin: float = 2.0**-4, half_range: int = 512, name: str = "prior") -> "GaussianLatent":
        zeros = torch.zeros(shape, dtype=torch.float64)
        return cls(zeros, zeros, bin, half_range, name)


class Pixels(_TensorStep):
    """Sub-pixels 0..255, seen by the network as (x - 128) / 128, under a discretized Laplace
    whose mean and log-scale (on that same scale) are exact-mode tensors. With (1, 3, H, W)
    parameters the value is an HxWx3 uint8 image; otherwise a uint8 array of their shape."""

    def __init__(self, mean: torch.Tensor, log_scale: torch.Tensor, name: str = "pixels"):
        means = (128 + mean / exact.ONE * 128).numpy().ravel()
        scales = (exact.fixed_exp(log_scale) * 128).numpy().ravel()
        dist = DiscretizedLaplace(means, scales, 0, 255)
        image = mean.dim() == 4 and mean.shape[:2] == (1, 3)
        shape = tuple(mean.shape[1:]) if image else tuple(mean.shape)
        to = (lambda x: np.asarray(x).transpose(2, 0, 1)) if image else np.asarray
        back = (lambda s: s.transpose(1, 2, 0)) if image else (lambda s: s)
        super().__init__(dist, shape, lambda x: to(x).astype(np.int64), lambda s: back(s).astype(np.uint8), name)


def image_to_fixed(img: np.ndarray) -> torch.Tensor:
    """An HxWx3 uint8 image as a (1, 3, H, W) exact-mode tensor of (x - 128) / 128."""
    return (torch.from_numpy(np.asarray(img, dtype=np.float64)).permute(2, 0, 1)[None] - 128) * (exact.ONE / 128)


def fixed_to_image(x: torch.Tensor) -> np.ndarray:
    """The inverse of `image_to_fixed`."""
    return (torch.round(x[0] / exact.ONE * 128) + 128).permute(1, 2, 0).numpy().astype(np.uint8)
