"""`vqlossless`'s contexts for the online scale calibration (`entropy.calibration`).

    context  = (channel, the predicted scale in half-octaves,
                the normalised errors of the known neighbours of the same colour, in half-octaves)

The network sees its errors at the known neighbours too, but learned what they mean on
average over its training photos; the calibration learns what they mean in this one. A tile
starts with no statistics (tiles are coded in parallel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...entropy.calibration import ENERGY_BINS, UNIT, ScaleCalibration, energy_level, scale_bins, scale_level
from .net import BLOCK, LOG_SCALE_RANGE, RADIUS

SCALE_BINS = scale_bins(LOG_SCALE_RANGE)
CONTEXTS = 3 * ENERGY_BINS * SCALE_BINS


class ScaleAdapter(ScaleCalibration):
    """The statistics of one tile, in the coding order: `start_phase` before a phase, then per
    channel `contexts` and `scale` before it is coded and `update` after."""

    def __init__(self):
        super().__init__(CONTEXTS, floor=LOG_SCALE_RANGE[0])

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
        energy = energy_level(self._totals[k, :rows, :cols], self._counts[:rows, :cols])
        return (k * ENERGY_BINS + energy) * SCALE_BINS + scale_level(log_scale, LOG_SCALE_RANGE[0])
