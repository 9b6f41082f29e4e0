"""The hyperprior's four transforms in plain torch, laid out as compressai's
`MeanScaleHyperprior` lays them out (same modules, same state-dict names, same parameter
order), with GDN written out here.

Why not compressai's own layers: importing anything from compressai imports all of it
(datasets, torch_geometric, pandas, scipy), 2-3 s before a codec can start, while coding needs
only convolutions and GDN. compressai stays the source of the entropy models that training
and the encoder-side search use (`net.py` imports them only there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REPARAM_OFFSET = 2**-18  # as compressai: GDN's beta and gamma are stored as sqrt(value + offset^2)


class _LowerBound(torch.autograd.Function):
    """max(x, bound), whose gradient still flows where it pushes x up from the bound."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad):
        x, bound = ctx.saved_tensors
        return ((x >= bound) | (grad < 0)) * grad, None


class LowerBound(nn.Module):
    def __init__(self, bound: float):
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LowerBound.apply(x, self.bound)


class NonNegative(nn.Module):
    """value = max(p, sqrt(minimum + offset^2))^2 - offset^2: keeps GDN's parameters positive."""

    def __init__(self, minimum: float = 0.0):
        super().__init__()
        self.register_buffer("pedestal", torch.tensor([REPARAM_OFFSET**2]))
        self.lower_bound = LowerBound((minimum + REPARAM_OFFSET**2) ** 0.5)

    def init(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.max(x + self.pedestal, self.pedestal))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.lower_bound(p) ** 2 - self.pedestal


class GDN(nn.Module):
    """Generalized divisive normalization (Balle et al. 2016): x / sqrt(beta + gamma * x^2),
    or x * sqrt(...) for the inverse (IGDN) in the synthesis."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_reparam = NonNegative(beta_min)
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma_reparam = NonNegative()
        self.gamma = nn.Parameter(self.gamma_reparam.init(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        norm = F.conv2d(x**2, self.gamma_reparam(self.gamma).reshape(c, c, 1, 1), self.beta_reparam(self.beta))
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, output_padding=stride - 1, padding=kernel // 2)


def analysis(N: int, M: int) -> nn.Sequential:
    """Images to M latent channels at 1/16 resolution (four stride-2 convolutions, GDN)."""
    return nn.Sequential(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis(N: int, M: int) -> nn.Sequential:
    """M latent channels at 1/16 resolution back to images (inverse GDN)."""
    return nn.Sequential(
        deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
        deconv(N, N), GDN(N, inverse=True), deconv(N, 3),
    )


def transforms(N: int, M: int, width: int | None = None) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential, nn.Sequential]:
    """(g_a, g_s, h_a, h_s) of a mean-scale hyperprior: images to M latent channels at 1/16
    resolution and back (`width` channels inside, N unless given); latents to N hyper-latent
    channels at 1/64 and back to 2M (scales, means)."""
    g_a, g_s = analysis(width or N, M), synthesis(width or N, M)
    h_a = nn.Sequential(conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), conv(N, N), nn.LeakyReLU(inplace=True), conv(N, N))
    h_s = nn.Sequential(
        deconv(N, M), nn.LeakyReLU(inplace=True), deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
        conv(M * 3 // 2, M * 2, 3, 1),
    )
    return g_a, g_s, h_a, h_s
