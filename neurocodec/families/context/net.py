"""The checkerboard context model (He et al. 2021) on the variable-rate mean-scale hyperprior.

The latent y is coded in two passes over a checkerboard: the anchors ((row + column) even)
under the hyperprior's Gaussians alone, then the other half under Gaussians that a 5x5
context convolution of the decoded anchors refines. Both passes decode in parallel over the
whole latent (no raster scan), and the refinement network runs in exact mode so the decoder
rebuilds it bit for bit.

The refinement is added to the hyperprior's (scales, means) and starts at zero (its last
layer is zero-initialised), so a network resumed from a trained hyperprior starts exactly
where that one is and can only improve by training.
"""

from __future__ import annotations

import torch
from torch import nn

from ... import exact
from ..hyperprior.net import VariableRateHyperprior


def anchors(like: torch.Tensor) -> torch.Tensor:
    """1 at the anchor positions ((row + column) even) of a (B, C, H, W) latent, else 0."""
    h, w = like.shape[-2:]
    r = torch.arange(h, device=like.device)[:, None]
    c = torch.arange(w, device=like.device)[None, :]
    return ((r + c) % 2 == 0).to(like.dtype)[None, None]


class CheckerboardHyperprior(VariableRateHyperprior):
    def __init__(self, N: int = 96, M: int = 160, levels: int = 9, likelihoods: bool = True, width: int | None = None):
        super().__init__(N=N, M=M, levels=levels, likelihoods=likelihoods, width=width)
        self.context = exact.Conv2d(M, 2 * M, 5, padding=2)
        self.ep = nn.Sequential(exact.Conv2d(4 * M, 2 * M, 1), exact.LeakyReLU(), exact.Conv2d(2 * M, 2 * M, 1))
        nn.init.zeros_(self.ep[-1].weight)
        nn.init.zeros_(self.ep[-1].bias)

    def refine(self, hyper: torch.Tensor, y_hat_anchors: torch.Tensor) -> torch.Tensor:
        """The correction to (scales, means) at the non-anchor positions, from the hyperprior's
        output and the decoded anchors (zero elsewhere); zero at the anchors."""
        where = hyper.device
        here = self.context.weight.device  # the CPU in a codec moved to a GPU (`ContextCodec.to`)
        hyper, y_hat_anchors = hyper.to(here), y_hat_anchors.to(here)
        delta = self.ep(torch.cat([hyper, self.context(y_hat_anchors)], 1))
        return (delta * (1 - anchors(delta))).to(where)

    def quantized(self, hyper, y_g, gain, inv_gain, quantize):
        """As the hyperprior's, in two passes: the anchors around the hyperprior's means, then
        the others around means refined from the quantized anchors."""
        first = anchors(y_g)
        _, means = hyper.chunk(2, 1)
        anchors_g = (quantize(y_g - means * gain) + means * gain) * first
        scales, means = (hyper + self.refine(hyper, anchors_g * inv_gain)).chunk(2, 1)
        means_g = means * gain
        others_g = (quantize(y_g - means_g) + means_g) * (1 - first)
        return anchors_g + others_g, scales * gain, means_g
