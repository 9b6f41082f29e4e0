"""Online calibration of Laplace scales (and means) to the image being coded, exactly at both ends.

A network is trained on many photos; one photo is noisier, smoother or more regular than
their average, and its scales are then too wide or too narrow by a factor that varies with
the situation. Both ends learn that factor as they go, from the symbols already coded, as
CALIC and LOCO-I adapt their error estimates per context:

    u        = |x - mean| / scale of a coded sub-pixel (`normalized_error`): E u = 1 when
               the Laplace's scale is right
    factor   = (sum of u in the context + PRIOR) / (count in the context + PRIOR)
    scale'   = scale * factor                     (the maximum-likelihood factor, shrunk to 1)

A model can also be biased on one image: its means too high or too low by a fraction of the
scale, the same way over a whole context (a colour cast it cannot see from a few neighbours).
`MeanCalibration` learns that fraction as a shrunk mean of the signed errors (`signed_error`)
and moves the means by it.

A codec chooses its contexts (`ScaleCalibration` takes their indices); `scale_level` and
`energy_level` are the two every image codec here uses: the predicted scale, and the
normalised errors of the known neighbours.

Exact: every statistic is an integer (u in exact-mode units, counts, window sums) held in
float64 below 2**53; contexts are found by integer comparisons, and the factor by integer
division. The decoder gathers the same statistics from the same symbols in the same order,
so it rebuilds each scale bit for bit on any machine.
"""

from __future__ import annotations

import math

import torch

from .. import exact

UNIT = int(exact.ONE)  # u and the factors in exact-mode units
PRIOR = 50  # the factor starts at 1 and trusts a context's statistics after about 50 sub-pixels
FACTOR_RANGE = (UNIT // 8, UNIT * 8)  # the factor stays within 1/8 .. 8
SCALE_STEP = round(exact.ONE * math.log(2) / 2)  # half an octave of the scale, in exact log units
ERROR_CLAMP = 16  # normalised errors are clamped here (a Laplace's tail beyond 16 scales: 1e-7)
SIGNED_CLAMP = 4  # signed errors are clamped to +-4 scales: outliers do not move a mean
# the neighbours' mean u, from 1/8 to 8 in half-octaves (13 bounds, 14 bins), and one bin for none
ENERGY_BOUNDS = torch.tensor([round(UNIT * 2 ** (j / 2)) for j in range(-6, 7)], dtype=torch.int64)
ENERGY_BINS = len(ENERGY_BOUNDS) + 2


def normalized_error(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """|x - mean| / scale, clamped to ERROR_CLAMP: how many scales the model missed by. `x` and
    `mean` on the same axis (exact-mode integers in exact mode, and then the result too,
    floored), `scale` a plain number on that axis (exact mode: the `fixed_exp` table's)."""
    u = (x - mean).abs_().div_(scale)
    if exact.is_exact():
        return u.floor_().clamp_(max=ERROR_CLAMP * exact.ONE)
    return u.clamp_(max=ERROR_CLAMP)


def signed_error(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(x - mean) / scale, clamped to +-SIGNED_CLAMP; floored in exact mode, as `normalized_error`."""
    e = (x - mean).div_(scale)
    if exact.is_exact():
        return e.floor_().clamp_(-SIGNED_CLAMP * exact.ONE, SIGNED_CLAMP * exact.ONE)
    return e.clamp_(-SIGNED_CLAMP, SIGNED_CLAMP)


def row_bands(rows: int, bands: int, min_rows: int = 1) -> list[slice]:
    """`rows` rows in order, in up to `bands` bands of at least `min_rows` rows (the last may be
    shorter): symbols that depend only on what came before them can be coded band by band, each
    band calibrated by the ones before."""
    step = max(min_rows, -(-rows // bands))
    return [slice(a, min(a + step, rows)) for a in range(0, rows, step)]


def scale_bins(log_range: tuple[float, float]) -> int:
    """How many half-octave levels `scale_level` gives for log-scales clamped to `log_range`."""
    return int((log_range[1] - log_range[0]) * exact.ONE) // SCALE_STEP + 1


def scale_level(log_scale: torch.Tensor, lo: float) -> torch.Tensor:
    """The half-octave level (int64) of exact-mode log-scales clamped at `lo` (natural units)."""
    return (log_scale - lo * exact.ONE).long() // SCALE_STEP


def energy_level(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The half-octave bin (int64) of the known neighbours' mean normalised error, from the sum
    of their u (exact units) and their count; ENERGY_BINS - 1 where none is known."""
    energy = torch.bucketize(total.long() // count.clamp(min=1), ENERGY_BOUNDS, right=True)
    return torch.where(count > 0, energy, ENERGY_BINS - 1)


class ScaleCalibration:
    """The statistics of `contexts` contexts, in the coding order: `scale` before a batch of
    sub-pixels is coded, `update` after. `floor`: the smallest scale the model can say."""

    def __init__(self, contexts: int, floor: float):
        self.sums = torch.zeros(contexts, dtype=torch.float64)
        self.counts = torch.zeros(contexts, dtype=torch.float64)
        self._floor = exact.fixed_exp(torch.tensor([floor * exact.ONE], dtype=torch.float64))

    def scale(self, contexts: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """`base` (fixed_exp of the log-scales: exact dyadic numbers) times each context's
        factor, floored at the smallest scale the network can say."""
        factors = (self.sums + PRIOR * UNIT).div_(self.counts + PRIOR, rounding_mode="floor").clamp_(*FACTOR_RANGE)
        scaled = base * factors[contexts] / UNIT  # a dyadic times an integer below 2**16: exact
        return torch.maximum(scaled, self._floor)

    def update(self, contexts: torch.Tensor, u: torch.Tensor) -> None:
        """The sub-pixels of `contexts` were coded, and missed by `u` (normalized_error, exact)."""
        self.sums.index_add_(0, contexts.ravel(), u.ravel())  # integers: exact in any order
        self.counts.index_add_(0, contexts.ravel(), torch.ones_like(u).ravel())


class MeanCalibration:
    """The signed errors of `contexts` contexts, in the coding order: `shift` before a batch of
    symbols is coded, `update` after. A mean moves by the signed errors' sum / (count + `prior`)."""

    def __init__(self, contexts: int, prior: int):
        self.sums = torch.zeros(contexts, dtype=torch.float64)
        self.counts = torch.zeros(contexts, dtype=torch.float64)
        self.prior = prior

    def shift(self, contexts: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """What to add to the means: each context's mean signed error (shrunk to 0, in exact
        units) times `scale`, on the axis of `scale` (float64: correctly rounded, so the same
        everywhere)."""
        bias = self.sums.div(self.counts + self.prior, rounding_mode="floor")
        return bias[contexts] * scale / UNIT

    def update(self, contexts: torch.Tensor, e: torch.Tensor) -> None:
        """The symbols of `contexts` were coded, off by `e` (signed_error, exact)."""
        self.sums.index_add_(0, contexts.ravel(), e.ravel())
        self.counts.index_add_(0, contexts.ravel(), torch.ones_like(e).ravel())
