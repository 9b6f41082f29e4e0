"""A generative lossy codec in the manner of HiFiC (Mentzer et al. 2020): the checkerboard
context model, trained for rate + MSE + a perceptual distance + an adversarial loss.

The coded latents, their entropy model and the file format are the `context` codec's; only
what the synthesis learns differs, so decoding costs the same and stays on the CPU. In
training a conditional patch discriminator (`PatchDiscriminator`) tells originals from
reconstructions, patch by patch, given the quantized latent (as HiFiC's D is conditioned on
y_hat): the synthesis learns to draw plausible texture where MSE alone would blur. The
discriminator is not shipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..context.net import CheckerboardHyperprior


class PatchDiscriminator(nn.Module):
    """Logits (B, 1, H/16, W/16), one per 16 x 16-pixel patch (receptive field about 70 px),
    for images (B, 3, H, W) in [0, 1] given their quantized latent (B, M, H/16, W/16)."""

    def __init__(self, M: int, width: int = 64, latent: int = 12):
        super().__init__()
        self.latent = nn.Sequential(nn.Conv2d(M, latent, 3, padding=1), nn.LeakyReLU(0.2))
        layers, cin = [], 3 + latent
        for cout in (width, 2 * width, 4 * width, 8 * width):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = cout
        self.net = nn.Sequential(*layers, nn.Conv2d(cin, 1, 1))

    def forward(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        cond = F.interpolate(self.latent(y_hat), size=x.shape[-2:], mode="nearest")
        return self.net(torch.cat([x * 2 - 1, cond], 1))


class GenerativeContext(CheckerboardHyperprior):
    """The context model (its training pass returns y_hat too) and the discriminator."""

    def __init__(self, N: int = 96, M: int = 160, levels: int = 9, likelihoods: bool = True, disc_width: int = 64,
                 width: int | None = None):
        super().__init__(N=N, M=M, levels=levels, likelihoods=likelihoods, width=width)
        self.disc = PatchDiscriminator(M, disc_width)
