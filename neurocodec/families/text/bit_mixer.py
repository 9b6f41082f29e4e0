"""Logistic mixing of a byte's eight binary decisions, after `ContextMixer` (as PAQ mixes).

`ContextMixer` mixes the network's next-byte distribution with the document's statistics
linearly, one weight per source. A logistic mixer weighs sources by how sure each is: a byte is
coded as eight binary decisions, most significant bit first, and at each node of that tree
every source says how likely a 1 is, in the logistic domain (stretch(p) = ln(p / (1 - p))):

    the network, the linear mix, each order's counts, the match model, a bias.

Three mixers weigh these inputs with weight sets picked by different contexts (the bit's depth
with how many orders have counts and whether a match is running; the same with the kind of the
byte before; the bit's depth with how sure the network is), and a second layer mixes their
three outputs. Every weight learns from the bit just coded.

Measured on the codec's own distributions (the network with its learning output layer, then
the linear mix; the mixers alone): Canoeing 1.7412 -> 1.7257 bits per byte (-0.9 %), Wilde's
poems 1.8907 -> 1.8699 (-1.1 %). Tried in a float prototype and left out: an adaptive
probability map after the mix (per node of the tree: -0.82 % instead of -0.89 % on Canoeing;
by the byte before as well, 0.1 % better without the network's learning, for a table 256 times
larger), one mixer instead of three (-0.80 %), adaptive maps from each order's counts to a
probability instead of (ones + 0.4) / (total + 0.8) (nothing), other context orders (nothing).

Everything is integer arithmetic (probabilities in 1/4096, stretch in 1/256 nat, weights in
1/65536, squash by interpolation of a fixed table as in lpaq), and the float inputs (the
network's and the linear mix's node probabilities) are floors of correctly rounded divisions of
pairwise sums, so encoder and decoder compute the same bits on any machine.
"""

from __future__ import annotations

import numpy as np

from ...entropy import Categorical
from .context_mix import BYTE_CLASS, CLASSES, MATCH_BUCKETS

# 4096 / (1 + e^-x) at x = -8, -7.5, ..., 8, rounded: squash() interpolates between them
_KNOTS = np.array([1, 2, 4, 6, 10, 17, 27, 45, 74, 120, 194, 311, 488, 747, 1102, 1546, 2048, 2550, 2994,
                   3349, 3608, 3785, 3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095], dtype=np.int64)
LIMIT = 2047  # stretch values lie in [-LIMIT, LIMIT] (1/256 nat)
ONE = 1 << 16  # a weight of 1.0
WEIGHT_LIMIT = 1 << 24  # weights stay within +-256.0 (whatever the input, int64 never overflows)
BIAS = 77  # the bias input, 0.3 nat
CONFIDENCE = 4  # the network's confidence in steps of 2 nats, for the third mixer's sets
MIXERS = 3
FIRST_RATE, FIRST_SHIFT = 3, 14  # first layer: w += 3 * sum(err * input) >> 14 (about 0.003 in float units)
SECOND_SHIFT = 16  # second layer: w += sum(err * input) >> 16 (about 0.0002)


def _squash(d: np.ndarray) -> np.ndarray:
    """1 / (1 + e^(-d / 256)) in 1/4096 for d in [-LIMIT, LIMIT]: the knots interpolated."""
    d = d + 2048
    i, f = d >> 7, d & 127
    return (_KNOTS[i] * (128 - f) + _KNOTS[i + 1] * f + 64) >> 7


SQUASH = _squash(np.arange(-LIMIT, LIMIT + 1))


def squash(d: np.ndarray) -> np.ndarray:
    """1 / (1 + e^(-d / 256)) in 1/4096, for integer d in [-LIMIT, LIMIT]."""
    return SQUASH[d + LIMIT]


def _stretch_table() -> np.ndarray:
    """stretch(p) for p = 0 .. 4095 (1/4096): the smallest d with squash(d) >= p."""
    table = np.full(4096, LIMIT, dtype=np.int64)
    first = np.searchsorted(SQUASH, np.arange(4096), side="left")  # squash is non-decreasing
    table[first < len(SQUASH)] = np.arange(-LIMIT, LIMIT + 1)[first[first < len(SQUASH)]]
    return table


STRETCH = _stretch_table()


def stretch(p12: np.ndarray) -> np.ndarray:
    return STRETCH[np.clip(p12, 1, 4095)]


def _tree(p: np.ndarray) -> list[np.ndarray]:
    """The masses of every node of the byte tree: tree[k][..., i] is the mass of the bytes whose
    top k bits are i (tree[8] is `p` itself). Pairwise sums, so the same on every machine."""
    tree = [p]
    for _ in range(8):
        p = np.add(p[..., 0::2], p[..., 1::2], dtype=np.int32 if p.dtype == np.uint16 else p.dtype)
        tree.append(p)
    return tree[::-1]


class BitMixer:
    """The logistic stage of one group: weights shared by all its streams, learned as they code."""

    def __init__(self, orders: int):
        self.orders = orders
        self.inputs = 2 + orders + 2  # network, linear mix, orders, match, bias
        sets = (8 * (orders + 1) * 2, 8 * CLASSES * (orders + 1) * 2, 8 * CONFIDENCE)
        self.offsets = np.cumsum((0,) + sets[:-1])  # the three mixers' weight sets, in one table
        self.weights = np.zeros((sum(sets), self.inputs), dtype=np.int64)
        self.weights[:, 1] = ONE  # start as the linear mix
        self.second = np.zeros((8, MIXERS + 1), dtype=np.int64)
        self.second[:, :MIXERS] = ONE // MIXERS
        self.hits = np.ones((MATCH_BUCKETS, 2), dtype=np.int64)  # how often a running match was right, by run

    def code(self, io, net: np.ndarray, mixed: np.ndarray, mixer, symbols: np.ndarray) -> np.ndarray:
        """Code one byte per stream as eight bits (`io.code`), under the network's distribution
        `net` (n, 256), `ContextMixer`'s `mixed` one and its state for this step (`mixer`, before
        its update); returns the bytes (decoded, or `symbols` when encoding)."""
        n, k = len(net), self.orders
        rows = np.arange(n)
        # the node masses of every source: the network's and the linear mix's probabilities, and
        # each order's counts (integers, exact in float64 too)
        probs, counts = _tree(np.stack([net, mixed])), _tree(np.stack(mixer.counts))
        seen = (counts[0][:, :, 0] > 0).sum(0)  # how many orders have counts
        kind = BYTE_CLASS[(mixer.history[:n] & np.uint64(0xFF)).astype(np.int64)]
        if mixer.match:
            bucket, _, predicted, _ = mixer._last_match
            running, run = bucket > 0, np.minimum(mixer.run[:n], MATCH_BUCKETS - 1)
        else:
            running, predicted, run = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        hit = self.hits[run]
        match_input = stretch((hit[:, 1] << 12) // hit.sum(1))
        # each mixer's weight set at each depth, but for the match (mixers 0 and 1) and the
        # network's confidence (mixer 2), which are known only at the bit
        base = np.stack([2 * seen, 2 * (kind * (k + 1) + seen), np.zeros(n, dtype=np.int64)], 1) + self.offsets
        per_depth = np.array([2 * (k + 1), 2 * CLASSES * (k + 1), CONFIDENCE])
        depth_sets = base[None] + np.arange(8)[:, None, None] * per_depth  # (8, n, 3)
        # a node's P(1) in 1/4096 from its masses: floor(4096 * (m * ones + a) / (m * total + b)), that is
        # ones / total for the probabilities and (ones + 0.4) / (total + 0.8) for the counts, exactly
        # (the counts' quotient of exact integers, floored, is their integer division)
        m = np.array([1.0, 1.0] + [10.0] * k)[:, None]
        a, b = np.array([0.0, 0.0] + [4.0] * k)[:, None], np.array([0.0, 0.0] + [8.0] * k)[:, None]
        x = np.empty((n, self.inputs), dtype=np.int64)
        x[:, -1] = BIAS
        layer = np.empty((n, MIXERS + 1), dtype=np.int64)
        layer[:, -1] = BIAS
        binary = np.empty((n, 2))
        prefix = np.zeros(n, dtype=np.int64)
        symbols = np.asarray(symbols, dtype=np.int64)
        for d in range(8):
            shift = 8 - d
            left_child = 2 * prefix
            on_path = running & (predicted >> shift == prefix)
            expected = (predicted >> (shift - 1)) & 1
            ones = np.concatenate([probs[d + 1][:, rows, left_child + 1], counts[d + 1][:, rows, left_child + 1]])
            total = np.concatenate([probs[d][:, rows, prefix], counts[d][:, rows, prefix]])  # (sources, n), float64
            num, den = (m * ones + a) * 4096.0, m * total + b
            q = np.divide(num, den, out=np.full_like(num, 2048.0), where=den > 0)  # a node of no mass: no opinion
            x[:, : 2 + k] = np.where(total > 0, stretch(np.floor(q).astype(np.int64)), 0).T  # no counts: no opinion
            x[:, -2] = np.where(on_path, (2 * expected - 1) * match_input, 0)
            confidence = np.minimum(np.abs(x[:, 0]) >> 9, CONFIDENCE - 1)
            sets = depth_sets[d] + np.stack([on_path, on_path, confidence], 1)
            dots = np.clip((self.weights[sets] * x[:, None, :]).sum(2) >> 16, -LIMIT, LIMIT)  # (n, 3)
            layer[:, :MIXERS] = dots
            mixed_st = np.clip((layer * self.second[d]).sum(1) >> 16, -LIMIT, LIMIT)
            final = np.clip(squash(mixed_st), 1, 4095)
            binary[:, 0], binary[:, 1] = 4096 - final, final
            bit = np.asarray(io.code(Categorical(binary), (symbols >> (shift - 1)) & 1), dtype=np.int64)
            # learn from the bit: each mixer from its own error, the second layer from the mix's
            target = bit << 12
            err = target[:, None] - squash(dots)  # (n, 3)
            self.weights += _per_set(sets.ravel(), (err[:, :, None] * x[:, None, :]).reshape(-1, self.inputs),
                                     len(self.weights)) * FIRST_RATE >> FIRST_SHIFT
            np.clip(self.weights, -WEIGHT_LIMIT, WEIGHT_LIMIT, out=self.weights)
            self.second[d] = np.clip(self.second[d] + (((target - final)[:, None] * layer).sum(0) >> SECOND_SHIFT),
                                     -WEIGHT_LIMIT, WEIGHT_LIMIT)
            if mixer.match:
                np.add.at(self.hits, (run[on_path], (expected == bit)[on_path].astype(np.int64)), 1)
            prefix = left_child + bit
        if (self.hits > 60000).any():
            self.hits = (self.hits + 1) >> 1
        return prefix


def _per_set(sets: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """The integer sums of `values` (n, m) over the streams of each set: (count, m). Exact:
    bincount adds in float64, and every partial sum stays far below 2**53."""
    m = values.shape[1]
    flat = (sets[:, None] * m + np.arange(m)).ravel()
    return np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=count * m).astype(np.int64).reshape(count, m)
