"""Online calibration of `vqlossless`'s Laplace scales to the image being coded.

The network is trained on many photos; one photo is noisier, smoother or more regular than
its average, and its scales are then too wide or too narrow by a factor that varies with
the situation. Both ends learn that factor as they go, from the pixels already coded, as
CALIC and LOCO-I adapt their error estimates per context:

    context  = (channel, the predicted scale in half-octaves,
                the normalised errors of the known neighbours of the same colour, in half-octaves)
    u        = |x - mean| / scale of a coded sub-pixel: for a Laplace whose scale is right, E u = 1
    factor   = (sum of u in the context + PRIOR) / (count in the context + PRIOR)
    scale'   = scale * factor                     (the maximum-likelihood factor, shrunk to 1)

The second part of the context is what the network cannot see: how wrong it has just been
nearby (its error energy), which says whether this region is harder than it looks.

Exact: every statistic is an integer (u in 1/256 units, counts, window sums) held in float64
below 2**53, or int64; contexts are found by integer comparisons, and the factor by integer
division. The decoder gathers the same statistics from the same symbols in the same order, so
it rebuilds each scale bit for bit on any machine. A tile starts with no statistics (tiles are
coded in parallel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ... import exact
from .net import BLOCK, LEVEL, LOG_SCALE_RANGE, RADIUS

UNIT = 256  # u (|x - mean| / scale) in 1/256 units
U_MAX = 1 << 16  # beyond any useful error: keeps every sum below 2**53
PRIOR = 50  # the factor starts at 1 and trusts a context's statistics after about 50 sub-pixels
FACTOR_RANGE = (UNIT // 8, UNIT * 8)  # the factor stays within 1/8 .. 8
SCALE_STEP = round(exact.ONE * math.log(2) / 2)  # half an octave of the scale, in exact log units
SCALE_BINS = int((LOG_SCALE_RANGE[1] - LOG_SCALE_RANGE[0]) * exact.ONE) // SCALE_STEP + 1
# the neighbours' mean u, from 1/8 to 8 in half-octaves (13 bounds, 14 bins), and one bin for none
ENERGY_BOUNDS = torch.tensor([round(UNIT * 2 ** (j / 2)) for j in range(-6, 7)], dtype=torch.int64)
ENERGY_BINS = len(ENERGY_BOUNDS) + 2
CONTEXTS = 3 * ENERGY_BINS * SCALE_BINS


class ScaleAdapter:
    """The statistics of one tile. `scale` before a channel of a phase is coded, `update`
    after, in the coding order (phase by phase, R, G, B)."""

    def __init__(self, height: int, width: int):
        """`height`, `width`: the tile's canvas (multiples of BLOCK)."""
        r = RADIUS
        # u of each colour at the coded pixels, and which pixels are coded, zero-padded by R
        self.errors = torch.zeros(1, 4, height + 2 * r, width + 2 * r, dtype=torch.float64)
        self.sums = torch.zeros(CONTEXTS, dtype=torch.float64)
        self.counts = torch.zeros(CONTEXTS, dtype=torch.float64)
        self._lo = exact.fixed_exp(torch.tensor([LOG_SCALE_RANGE[0] * exact.ONE], dtype=torch.float64))

    def contexts(self, k: int, phase: tuple[int, int], log_scale: torch.Tensor) -> torch.Tensor:
        """The context (int64) of each sub-pixel of channel k at the phase's (rows, cols),
        from its clamped exact log-scale and its neighbours' errors."""
        rows, cols = log_scale.shape
        a, b = phase
        window = self.errors[:, :, a:, b:]
        sums = F.avg_pool2d(window[:, [k, 3]], 2 * RADIUS + 1, stride=BLOCK, divisor_override=1)[0, :, :rows, :cols]
        total, known = sums[0].long(), sums[1].long()
        energy = torch.bucketize(total // known.clamp(min=1), ENERGY_BOUNDS, right=True)
        energy = torch.where(known > 0, energy, ENERGY_BINS - 1)
        level = (log_scale - LOG_SCALE_RANGE[0] * exact.ONE).long() // SCALE_STEP
        return (k * ENERGY_BINS + energy) * SCALE_BINS + level

    def scale(self, contexts: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """`base` (fixed_exp of the log-scales: exact dyadic numbers) times each context's
        factor, floored at the smallest scale the network can say."""
        factor = (self.sums[contexts] + PRIOR * UNIT).div(self.counts[contexts] + PRIOR, rounding_mode="floor")
        scaled = base * factor.clamp_(*FACTOR_RANGE) / UNIT  # dyadic times an integer below 2**12: exact
        return torch.maximum(scaled, self._lo)

    def update(self, k: int, phase: tuple[int, int], contexts: torch.Tensor, symbols: torch.Tensor,
               mean: torch.Tensor, base: torch.Tensor) -> None:
        """Channel k of the phase was coded: `symbols` (rows, cols, 0..255) under `mean`
        (exact units) and the scales `base` that `scale` was given."""
        error = ((symbols - 128) * LEVEL - mean).abs_()  # exact units: integers
        u = (error * UNIT).div_(base * exact.ONE, rounding_mode="floor").clamp_(max=U_MAX)
        self.sums.index_add_(0, contexts.ravel(), u.ravel())  # integers: exact in any order
        self.counts.index_add_(0, contexts.ravel(), torch.ones_like(u).ravel())
        rows, cols = symbols.shape
        a, b = phase
        r = RADIUS
        at = (slice(r + a, r + a + BLOCK * rows, BLOCK), slice(r + b, r + b + BLOCK * cols, BLOCK))
        self.errors[0, k][at] = u
        if k == 2:
            self.errors[0, 3][at] = 1
