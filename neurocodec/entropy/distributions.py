"""Batches of discrete distributions over integer symbols, ready for constriction.

Each class holds parameters for `n` symbols (or one shared distribution, `n=None`) over a
contiguous support `[lo, hi]` and knows two things: the constriction model it stands for
(`model()`), and its own ideal code length `bits(symbols)` = -log2 p, which tests and
benchmarks compare with the real coded size.
"""

from __future__ import annotations

import math

import constriction
import numpy as np

_model = constriction.stream.model


class Distribution:
    lo: int
    hi: int
    n: int | None  # number of symbols the batch describes; None: one model for any count

    def model(self) -> tuple:
        """(model or model family, *per-symbol parameter arrays) for a constriction coder."""
        raise NotImplementedError

    def to_index(self, symbols: np.ndarray) -> np.ndarray:
        """Symbols as constriction sees them; raises ValueError outside the support."""
        s = np.asarray(symbols)
        if s.size and (s.min() < self.lo or s.max() > self.hi):
            raise ValueError(f"symbol outside the model's support [{self.lo}, {self.hi}]")
        return s.astype(np.int32)

    def from_index(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(index, dtype=np.int64)

    def bits(self, symbols: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Categorical(Distribution):
    """Explicit probabilities over `lo, lo+1, ..., lo+K-1`; `probs` is (K,) or (n, K).

    Probabilities need not be normalized; every symbol keeps a nonzero probability after
    fixed-point quantization (constriction's leaky quantization), so any symbol in the
    support can be coded.
    """

    def __init__(self, probs: np.ndarray, lo: int = 0):
        p = np.ascontiguousarray(probs, dtype=np.float64)
        if p.ndim not in (1, 2) or p.shape[-1] < 1 or not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError("probabilities must be a finite, non-negative (K,) or (n, K) array")
        self.probs = p
        self.lo, self.hi = lo, lo + p.shape[-1] - 1
        self.n = p.shape[0] if p.ndim == 2 else None

    @classmethod
    def from_logits(cls, logits: np.ndarray, lo: int = 0) -> "Categorical":
        z = np.asarray(logits, dtype=np.float64)
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return cls(z / z.sum(axis=-1, keepdims=True), lo)

    def model(self) -> tuple:
        if self.n is None:
            return (_model.Categorical(self.probs, perfect=False),)
        return (_model.Categorical(perfect=False), self.probs)

    def to_index(self, symbols):
        return (super().to_index(symbols) - self.lo).astype(np.int32)

    def from_index(self, index):
        return np.asarray(index, dtype=np.int64) + self.lo

    def bits(self, symbols):
        idx = np.asarray(symbols) - self.lo  # only the coded symbols' probabilities are normalized
        if self.n is None:
            return -np.log2(self.probs[idx] / self.probs.sum())
        return -np.log2(self.probs[np.arange(self.n), idx] / self.probs.sum(axis=-1))


def _bin_log_mass(log_cdf, s: np.ndarray, lo: int, hi: int, means: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """ln P(symbol) for a distribution binned on the integers lo..hi, the outermost bins taking
    the tails (what constriction's quantized models do), computed on the side of the smaller
    tail; `log_cdf(z)` is the log CDF of the standardized distribution."""
    upper = np.where(s >= hi, np.inf, (s + 0.5 - means) / scales)
    lower = np.where(s <= lo, -np.inf, (s - 0.5 - means) / scales)
    flip = (upper + lower) > 0
    u = np.where(flip, -lower, upper)
    l_ = np.where(flip, -upper, lower)
    with np.errstate(invalid="ignore", divide="ignore"):
        return log_cdf(u) + np.log1p(-np.exp(np.minimum(log_cdf(l_) - log_cdf(u), -1e-300)))


class DiscretizedGaussian(Distribution):
    """Gaussian(mean, scale) integrated over unit bins centred on the integers lo..hi; the
    outermost bins take the tails (constriction's QuantizedGaussian), so symbols must lie in
    [lo, hi]."""

    def __init__(self, means: np.ndarray, scales: np.ndarray, lo: int, hi: int):
        self.means = np.ascontiguousarray(means, dtype=np.float64).ravel()
        self.scales = np.ascontiguousarray(scales, dtype=np.float64).ravel()
        if self.means.shape != self.scales.shape:
            raise ValueError("means and scales must have the same number of elements")
        if self.scales.size and not (np.all(self.scales > 0) and np.all(np.isfinite(self.scales))):
            raise ValueError("scales must be positive and finite")
        self.lo, self.hi, self.n = int(lo), int(hi), self.means.size

    def model(self) -> tuple:
        return (_model.QuantizedGaussian(self.lo, self.hi), self.means, self.scales)

    def bits(self, symbols):
        s = np.asarray(symbols, dtype=np.float64).ravel()
        from scipy.special import log_ndtr  # here: scipy.special takes 0.1-0.2 s to import

        return -_bin_log_mass(log_ndtr, s, self.lo, self.hi, self.means, self.scales) / math.log(2)


def _laplace_log_cdf(z: np.ndarray) -> np.ndarray:
    return np.where(z < 0, z - math.log(2), np.log1p(-0.5 * np.exp(-np.abs(z))))


class DiscretizedLaplace(DiscretizedGaussian):
    """Laplace(mean, scale) on unit bins of lo..hi, the outermost bins taking the tails
    (constriction's QuantizedLaplace): heavier tails than a Gaussian, as residuals have."""

    def model(self) -> tuple:
        return (_model.QuantizedLaplace(self.lo, self.hi), self.means, self.scales)

    def bits(self, symbols):
        s = np.asarray(symbols, dtype=np.float64).ravel()
        return -_bin_log_mass(_laplace_log_cdf, s, self.lo, self.hi, self.means, self.scales) / math.log(2)


class DiscretizedLogisticMixture(Distribution):
    """A mixture of logistics integrated over unit bins on lo..hi (PixelCNN++ style).

    `logit_weights`, `means`, `log_scales` are (n, C): C components per symbol. The outermost
    bins take the whole tails, as in Salimans et al. 2017. The bin masses are computed here
    in float64 and handed to constriction as a categorical table of hi-lo+1 entries.
    """

    def __init__(self, logit_weights, means, log_scales, lo: int = 0, hi: int = 255):
        w = np.asarray(logit_weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        self.log_scales = np.asarray(log_scales, dtype=np.float64)
        if not (w.shape == self.means.shape == self.log_scales.shape) or w.ndim != 2:
            raise ValueError("logit_weights, means and log_scales must all be (n, C)")
        w = np.exp(w - w.max(axis=1, keepdims=True))
        self.weights = w / w.sum(axis=1, keepdims=True)
        self.lo, self.hi, self.n = int(lo), int(hi), w.shape[0]
        self._table: np.ndarray | None = None

    def table(self, block: int = 4096) -> np.ndarray:
        """(n, K) bin probabilities, computed once, `block` rows at a time."""
        if self._table is None:
            self._table = self._compute_table(block)
        return self._table

    def _compute_table(self, block: int) -> np.ndarray:
        from scipy.special import expit

        edges = np.arange(self.lo - 0.5, self.hi + 1.0, 1.0)  # K + 1 edges
        out = np.empty((self.n, edges.size - 1))
        for i in range(0, self.n, block):
            rows = slice(i, i + block)
            inv_s = np.exp(-self.log_scales[rows])[:, :, None]
            cdf = expit((edges[None, None, :] - self.means[rows, :, None]) * inv_s)
            cdf[:, :, 0], cdf[:, :, -1] = 0.0, 1.0
            out[rows] = np.einsum("nc,nck->nk", self.weights[rows], np.diff(cdf, axis=2))
        return out

    def model(self) -> tuple:
        return (_model.Categorical(perfect=False), np.ascontiguousarray(self.table()))

    def to_index(self, symbols):
        return (super().to_index(symbols) - self.lo).astype(np.int32)

    def from_index(self, index):
        return np.asarray(index, dtype=np.int64) + self.lo

    def bits(self, symbols):
        t = self.table()
        return -np.log2(t[np.arange(self.n), np.asarray(symbols) - self.lo])
