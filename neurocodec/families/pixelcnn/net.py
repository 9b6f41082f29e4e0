"""The autoregressive pixel model of the `pixelcnn` codec: a causal neighbourhood network.

p(x) = prod over pixels in raster order of p(R | ctx) p(G | ctx, R) p(B | ctx, R, G), where
ctx is the causal neighbourhood of the pixel: the `radius` rows above it, `radius` columns to
either side, and the `radius` pixels to its left (a masked convolution, PixelCNN's mask "A").
One masked convolution followed by 1x1 layers gives a receptive field of exactly that
neighbourhood; limiting it this way is what makes decoding practical: pixel (r, c) can be
decoded at step c + (radius + 1) * r, so a whole anti-diagonal wavefront is decoded in one
batch (see `pixelcnn.wavefront`), with no bits lost to tiling.

Each sub-pixel has a discretized logistic mixture of `mixtures` components (PixelCNN++).
The colour channels are conditioned on each other: G's head sees R's value, B's sees R and G.
Pixels enter as (x - 128) / 128, so one level is 1/128 and exact mode sees them exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import exact

LOG_SCALE_MIN = -7.0  # in units of the normalized pixel value: e**-7 * 128 ~ 0.12 levels
HALF_BIN = 1.0 / 256.0


def causal_mask(radius: int, channels_in: int, channels_out: int) -> torch.Tensor:
    """Mask of a (radius+1) x (2*radius+1) kernel whose last row is the current one: only
    the pixels strictly before the centre in raster order are seen."""
    mask = torch.ones(channels_out, channels_in, radius + 1, 2 * radius + 1)
    mask[:, :, radius, radius:] = 0
    return mask


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8-valued pixels -> the network's input scale."""
    return (x.float() - 128.0) / 128.0


class ChannelHead(nn.Module):
    """Mixture parameters of one colour channel from the features and the channels before it."""

    def __init__(self, features: int, previous: int, hidden: int, mixtures: int):
        super().__init__()
        self.previous = previous
        self.hidden = exact.Conv2d(features + previous, hidden, 1)
        self.out = exact.Conv2d(hidden, 3 * mixtures, 1)
        # a direct linear path from the previous channels (G's mean follows R's closely)
        self.skip = exact.Conv2d(previous, 3 * mixtures, 1, bias=False) if previous else None

    def forward(self, h: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        inp = h if prev is None else torch.cat([h, prev], 1)
        out = self.out(exact.leaky_relu(self.hidden(inp)))
        return out if self.skip is None else out + self.skip(prev)


class CausalPixelModel(nn.Module):
    def __init__(self, radius: int = 4, features: int = 128, layers: int = 2, head_hidden: int = 64, mixtures: int = 5):
        super().__init__()
        self.radius, self.mixtures = radius, mixtures
        self.context = exact.Conv2d(3, features, (radius + 1, 2 * radius + 1), mask=causal_mask(radius, 3, features))
        self.trunk = nn.ModuleList(exact.Conv2d(features, features, 1) for _ in range(layers))
        self.heads = nn.ModuleList(ChannelHead(features, k, head_hidden, mixtures) for k in range(3))
        # a linear path from the neighbourhood to every parameter: linear prediction (what
        # LOCO-I and CALIC start from) is there from the first step, the network learns the rest
        kernel = (radius + 1, 2 * radius + 1)
        self.direct = exact.Conv2d(3, 9 * mixtures, kernel, mask=causal_mask(radius, 3, 9 * mixtures), bias=False)
        nn.init.zeros_(self.direct.weight)
        for head in self.heads:  # start with scales of a few levels rather than the whole range
            nn.init.constant_(head.out.bias[2 * mixtures :], -3.0)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero (= level 128) padding above and to both sides; the kernel never looks below."""
        r = self.radius
        return F.pad(x, (r, r, r, 0))

    def features(self, x_padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of every pixel from its causal neighbourhood (`x_padded` from `pad`), and
        the linear path's share of the parameters of all three channels."""
        h = exact.leaky_relu(self.context(x_padded))
        for layer in self.trunk:
            h = exact.leaky_relu(layer(h))
        return h, self.direct(x_padded)

    def head(self, k: int, features: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """(B, 3*mixtures, ...) parameters of channel k, given channels 0..k-1 of `x`."""
        h, direct = features
        n = 3 * self.mixtures
        return self.heads[k](h, x[:, :k] if k else None) + direct[:, k * n : (k + 1) * n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training: bits per sub-pixel of a batch of normalized images (B, 3, H, W)."""
        f = self.features(self.pad(x))
        total = sum(mixture_nll(self.head(k, f, x), x[:, k : k + 1]).mean() for k in range(3))
        return total / 3 / math.log(2)


def split_params(p: torch.Tensor, mixtures: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits, means, log_scales (log_scales clamped below)."""
    logits, means, log_scales = p.split(mixtures, dim=1)
    return logits, means, log_scales.clamp(min=LOG_SCALE_MIN)


def mixture_nll(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-ln P(x) under the discretized logistic mixture `p` (B, 3C, H, W); x is (B, 1, H, W)
    normalized. The bins of levels 0 and 255 take the tails (Salimans et al. 2017)."""
    logits, means, log_scales = split_params(p, p.shape[1] // 3)
    centered = x - means
    inv_s = torch.exp(-log_scales)
    plus = inv_s * (centered + HALF_BIN)
    minus = inv_s * (centered - HALF_BIN)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus)
    log_one_minus_cdf_minus = -F.softplus(minus)
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * centered
    log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid) + math.log(2 * HALF_BIN)
    log_bin = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
    log_prob = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.99, log_one_minus_cdf_minus, log_bin))
    return -torch.logsumexp(log_prob + F.log_softmax(logits, dim=1), dim=1)
