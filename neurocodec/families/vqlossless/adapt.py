"""Online calibration of `vqlossless`'s Laplace scales to the image being coded.

The network is trained on many photos; one photo is noisier, smoother or more regular than
its average, and its scales are then too wide or too narrow by a factor that varies with
the situation. Both ends learn that factor as they go, from the pixels already coded, as
CALIC and LOCO-I adapt their error estimates per context:

    context  = (channel, the predicted scale in half-octaves,
                the normalised errors of the known neighbours of the same colour, in half-octaves)
    u        = |x - mean| / scale of a coded sub-pixel (net.normalized_error): E u = 1 when
               the Laplace's scale is right
    factor   = (sum of u in the context + PRIOR) / (count in the context + PRIOR)
    scale'   = scale * factor                     (the maximum-likelihood factor, shrunk to 1)

The network sees its errors at the known neighbours too, but learned what they mean on
average over its training photos; this table learns what they mean in this one.

Exact: every statistic is an integer (u in exact-mode units, counts, window sums) held in
float64 below 2**53, or int64; contexts are found by integer comparisons, and the factor by integer
division. The decoder gathers the same statistics from the same symbols in the same order, so
it rebuilds each scale bit for bit on any machine. A tile starts with no statistics (tiles are
coded in parallel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ... import exact
from .net import BLOCK, LOG_SCALE_RANGE, RADIUS

UNIT = int(exact.ONE)  # u and the factors in exact-mode units
PRIOR = 50  # the factor starts at 1 and trusts a context's statistics after about 50 sub-pixels
FACTOR_RANGE = (UNIT // 8, UNIT * 8)  # the factor stays within 1/8 .. 8
SCALE_STEP = round(exact.ONE * math.log(2) / 2)  # half an octave of the scale, in exact log units
SCALE_BINS = int((LOG_SCALE_RANGE[1] - LOG_SCALE_RANGE[0]) * exact.ONE) // SCALE_STEP + 1
# the neighbours' mean u, from 1/8 to 8 in half-octaves (13 bounds, 14 bins), and one bin for none
ENERGY_BOUNDS = torch.tensor([round(UNIT * 2 ** (j / 2)) for j in range(-6, 7)], dtype=torch.int64)
ENERGY_BINS = len(ENERGY_BOUNDS) + 2
CONTEXTS = 3 * ENERGY_BINS * SCALE_BINS


class ScaleAdapter:
    """The statistics of one tile, in the coding order: `start_phase` before a phase, then per
    channel `contexts` and `scale` before it is coded and `update` after."""

    def __init__(self):
        self.sums = torch.zeros(CONTEXTS, dtype=torch.float64)
        self.counts = torch.zeros(CONTEXTS, dtype=torch.float64)
        self._lo = exact.fixed_exp(torch.tensor([LOG_SCALE_RANGE[0] * exact.ONE], dtype=torch.float64))

    def start_phase(self, phase: tuple[int, int], errors: torch.Tensor, known: torch.Tensor) -> None:
        """The sums of the known neighbours' normalised errors per colour, and their count, in
        the window of each pixel of the phase: `errors` (1, 3, ...) and `known` (1, 1, ...), the
        tile's normalised errors and its coded pixels (exact.ONE there), padded by RADIUS (what
        the network sees). Once for the phase's three colours: a colour's errors at the phase's
        own pixels are written only after that colour is coded, and the mask after the phase."""
        a, b = phase

        def window_sums(t: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(t[:, :, a:, b:], 2 * RADIUS + 1, stride=BLOCK, divisor_override=1)[0].long()

        self._totals, self._counts = window_sums(errors), window_sums(known)[0] // UNIT

    def contexts(self, k: int, log_scale: torch.Tensor) -> torch.Tensor:
        """The context (int64) of each sub-pixel of channel k at the phase's (rows, cols), from
        its clamped exact log-scale and its known neighbours' errors (`start_phase`)."""
        rows, cols = log_scale.shape
        total, count = self._totals[k, :rows, :cols], self._counts[:rows, :cols]
        energy = torch.bucketize(total // count.clamp(min=1), ENERGY_BOUNDS, right=True)
        energy = torch.where(count > 0, energy, ENERGY_BINS - 1)
        level = (log_scale - LOG_SCALE_RANGE[0] * exact.ONE).long() // SCALE_STEP
        return (k * ENERGY_BINS + energy) * SCALE_BINS + level

    def scale(self, contexts: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """`base` (fixed_exp of the log-scales: exact dyadic numbers) times each context's
        factor, floored at the smallest scale the network can say."""
        factor = (self.sums[contexts] + PRIOR * UNIT).div(self.counts[contexts] + PRIOR, rounding_mode="floor")
        scaled = base * factor.clamp_(*FACTOR_RANGE) / UNIT  # a dyadic times an integer below 2**16: exact
        return torch.maximum(scaled, self._lo)

    def update(self, contexts: torch.Tensor, u: torch.Tensor) -> None:
        """The sub-pixels of `contexts` were coded, and missed by `u` (normalized_error, exact)."""
        self.sums.index_add_(0, contexts.ravel(), u.ravel())  # integers: exact in any order
        self.counts.index_add_(0, contexts.ravel(), torch.ones_like(u).ravel())
