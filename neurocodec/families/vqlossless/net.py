"""The pixel model of `vqlossless`: an image given the code vectors of a trained `vq` codec.

    x --vq: g_a, RVQ (first n stages)--> z_hat (the sum of n code vectors, 1/16 of the size)
    p(x | z_hat) = prod over the four phases of the 2x2 polyphase grid, in the order
                   (0,0), (1,1), (0,1), (1,0):  p(R) p(G | R) p(B | R, G)  at every pixel of the phase

Each phase is one batch over the whole image, so a picture is 12 network passes at half
resolution (L3C and RC code the residual of a lossy layer in as few passes; a raster-scan
model needs one per pixel). A phase sees:

- the condition: z_hat upsampled to full resolution by convolutions and pixel shuffles (what
  the vq decoder's synthesis does, here in exact arithmetic and learned for this purpose);
- the pixels of the phases before it (the 3 x 3 neighbourhood at half resolution reaches their
  nearest pixels on every side);
- for G and B, the channels of the same pixel coded before.

Every sub-pixel has a discretized Laplace (mean and scale), which constriction codes without a
table of 256 entries per sub-pixel. All layers are `neurocodec.exact` layers, so the decoder
rebuilds the same distributions bit for bit; the vq parts (g_a, codebooks, index prior) are
those of the vq codec it was built from, frozen.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import exact
from ...entropy.losses import laplace_bits
from ..vq.net import VQVAE

PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))  # coding order of the positions in each 2x2 block
LOG_SCALE_RANGE = (-7.0, 3.0)  # of the scale on the (x - 128) / 128 axis: 0.12 to 2,600 levels
LEVEL = exact.ONE / 128  # one pixel level in exact-mode units


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): channel block p holds phase PHASES[p]."""
    return torch.cat([x[:, :, a::2, b::2] for a, b in PHASES], 1)


class Condition(nn.Module):
    """z_hat (B, D, h, w) and the stage count -> `out` features per pixel (B, out, 16h, 16w)."""

    def __init__(self, dim: int, width: int, out: int):
        super().__init__()
        self.net = nn.Sequential(
            exact.Conv2d(dim + 1, width, 3, padding=1), exact.LeakyReLU(),
            exact.Conv2d(width, 32 * 16, 1), nn.PixelShuffle(4),
            exact.Conv2d(32, 64, 3, padding=1), exact.LeakyReLU(),
            exact.Conv2d(64, out * 16, 1), nn.PixelShuffle(4),
        )

    def forward(self, z_hat: torch.Tensor, fraction: float) -> torch.Tensor:
        """`fraction`: the stages used over the stages there are (a multiple of 1/S)."""
        level = torch.full_like(z_hat[:, :1], round(fraction * exact.ONE) / (1 if exact.is_exact() else exact.ONE))
        return self.net(torch.cat([z_hat, level], 1))


class PhaseModel(nn.Module):
    """Laplace parameters of the sub-pixels of one phase, channel by channel."""

    def __init__(self, cond: int, width: int, head: int):
        super().__init__()
        self.cond = exact.Conv2d(4 * cond, width, 1)  # the condition of the four phases (B, 4*cond, H/2, W/2)
        self.known = exact.Conv2d(12 + 8, width, 3, padding=1, bias=False)  # known pixels, their mask, the phase
        self.trunk = exact.Conv2d(width, width, 1)
        self.hidden = nn.ModuleList(exact.Conv2d(width + k, head, 1) for k in range(3))
        self.out = nn.ModuleList(exact.Conv2d(head, 2, 1) for _ in range(3))
        self.skip = nn.ModuleList(exact.Conv2d(k, 2, 1, bias=False) for k in (1, 2))  # from R (and G) of the pixel
        # a linear predictor from the neighbours, there from the first step
        self.direct = exact.Conv2d(12, 6, 3, padding=1, bias=False)
        nn.init.zeros_(self.direct.weight)
        for out in self.out:
            nn.init.constant_(out.bias[1:], -3.0)

    def features(self, cond: torch.Tensor, pixels: torch.Tensor, phase: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, the linear path's parameters) of phase `phase`: `cond` is the
        condition's `self.cond` projection, `pixels` the space-to-depth image (B, 12, H/2, W/2)
        with the phases from `phase` on zeroed."""
        b, _, h, w = pixels.shape
        flags = torch.zeros(b, 8, h, w, dtype=pixels.dtype, device=pixels.device)
        one = exact.ONE if exact.is_exact() else 1.0
        flags[:, :phase] = one  # which phases are known
        flags[:, 4 + phase] = one  # which one is coded
        x = exact.leaky_relu(cond + self.known(torch.cat([pixels, flags], 1)))
        return exact.leaky_relu(self.trunk(x)), self.direct(pixels)

    def head(self, k: int, features: tuple[torch.Tensor, torch.Tensor], previous: torch.Tensor | None) -> torch.Tensor:
        """(B, 2, H/2, W/2) mean and log-scale of channel k given channels 0..k-1 of the pixel."""
        h, direct = features
        inp = h if previous is None else torch.cat([h, previous], 1)
        out = self.out[k](exact.leaky_relu(self.hidden[k](inp))) + direct[:, 2 * k : 2 * k + 2]
        return out if previous is None else out + self.skip[k - 1](previous)


def mask_phases(pixels: torch.Tensor, phase: int) -> torch.Tensor:
    """The space-to-depth pixels with the phases from `phase` on set to zero (unknown)."""
    out = pixels.clone()
    out[:, 3 * phase :] = 0
    return out


class VQLossless(nn.Module):
    def __init__(self, vq: dict, cond: int = 8, cond_width: int = 128, width: int = 48, head: int = 32):
        super().__init__()
        self.vq_arch = dict(vq)
        self.cond_channels, self.cond_width, self.width, self.head_width = cond, cond_width, width, head
        self.vq = VQVAE(**vq)
        self.vq.g_s = nn.Identity()  # only the encoder's analysis, the codebooks and the index prior
        self.vq.requires_grad_(False)
        self.condition = Condition(self.vq.dim, cond_width, cond)
        self.phases = PhaseModel(cond, width, head)

    def arch(self) -> dict:
        return {"vq": self.vq_arch, "cond": self.cond_channels, "cond_width": self.cond_width,
                "width": self.width, "head": self.head_width}

    @torch.no_grad()
    def latent(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Training: z_hat (float) of images x (B, 3, H, W) in [0, 1] from the first n stages."""
        self.vq.eval()
        z_hat, _, _ = self.vq.rvq(self.vq.g_a(x), n)
        return z_hat

    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Training: bits per sub-pixel of x (B, 3, H, W) in [0, 1], H and W multiples of 16,
        given the first n stages (the index bits are the vq prior's, not counted here)."""
        levels = torch.round(x * 255)
        z_hat = self.latent(x, n)
        cond = self.phases.cond(space_to_depth(self.condition(z_hat, n / self.vq.stages)))
        pixels = space_to_depth((levels - 128) / 128)
        target = space_to_depth(levels)
        bits = 0.0
        for p in range(4):
            f = self.phases.features(cond, mask_phases(pixels, p), p)
            previous = None
            for k in range(3):
                mean, log_scale = self.phases.head(k, f, previous).split(1, 1)
                scale = torch.exp(log_scale.clamp(*LOG_SCALE_RANGE)) * 128
                bits = bits + laplace_bits(target[:, 3 * p + k : 3 * p + k + 1], 128 + mean * 128, scale, 0, 255).mean()
                previous = pixels[:, 3 * p : 3 * p + k + 1]
        return bits / 12
