"""Logistic mixing of a byte's eight binary decisions, after `ContextMixer` (as PAQ mixes).

`ContextMixer` mixes the network's next-byte distribution with the document's statistics
linearly, one weight per source. A logistic mixer weighs sources by how sure each is: a byte is
coded as eight binary decisions, most significant bit first, and at each node of that tree
every source says how likely a 1 is, in the logistic domain (stretch(p) = ln(p / (1 - p))):

    the network, the linear mix, each order's counts, two word contexts ("logistic": 2), the
    match model, a bias.

Three mixers weigh these inputs with weight sets picked by different contexts (the bit's depth
with how many sources have counts and whether a match is running; the same with the kind of the
byte before; the bit's depth with how sure the network is), and a second layer mixes their
three outputs. Every weight learns from the bit just coded. The word contexts (`Words`) count
the bytes that followed the word so far, and the word before with the word so far (runs of
letters, case folded), which the byte orders of `ContextMixer` see only within 7 bytes.

Measured on the codec's own distributions (the network with its learning output layer, then
the linear mix; the mixers alone): Canoeing 1.7412 -> 1.7257 bits per byte (-0.9 %) without
the word contexts, 1.7175 (-1.4 %) with them; Wilde's poems 1.8907 -> 1.8699 (-1.1 %), with
words (float prototype) 1.8586 (-1.7 %); Walden 1.7939 -> 1.7810 (-0.7 %), 1.7756 (-1.0 %).
Tried in a float prototype and left out: an adaptive probability map after the mix (per node
of the tree: -0.82 % instead of -0.89 % on Canoeing; by the byte before as well, 0.1 % better
without the network's learning, for a table 256 times larger), one mixer instead of three
(-0.80 %), adaptive maps from each order's counts to a probability instead of (ones + 0.4) /
(total + 0.8) (nothing), other byte orders (nothing).

Everything is integer arithmetic (probabilities in 1/4096, stretch in 1/256 nat, weights in
1/65536, squash by interpolation of a fixed table as in lpaq), and the float inputs (the
network's and the linear mix's node probabilities) are floors of correctly rounded divisions of
pairwise sums, so encoder and decoder compute the same bits on any machine. The per-bit work
runs in loops compiled by numba (`_kernels`): in numpy it was a hundred small calls a bit, and
decoding Walden went from 29.2 to 20.4 kB/s; compiled, 33.2 to 27.2 kB/s (idle 2-core CPU, one
measurement each, the same files byte for byte).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ...entropy import Categorical
from .context_mix import BYTE_CLASS, CLASSES, COUNT_MAX, HASH, MATCH_BUCKETS

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
# Word contexts ("logistic": 2): counts of the byte after (the word before, the word so far) and
# after (the word so far), words being runs of letters, case folded; each in a table of
# 2**WORD_ROWS_LOG2 rows of 256 uint16 counts (32 MiB each; 2**18 rows gained 0.06 % more on
# Walden, 2**16 0.05 % less).
WORD_ROWS_LOG2 = 17
_LETTER = np.zeros(256, dtype=bool)
_LETTER[ord("a") : ord("z") + 1] = _LETTER[ord("A") : ord("Z") + 1] = True
_FOLDED = np.arange(256, dtype=np.uint64)
_FOLDED[ord("A") : ord("Z") + 1] += np.uint64(32)
_WORD_PRIME, _PAIR = np.uint64(0x100000001B3), np.uint64(0x9E3779B97F4A7C15)


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


class Kernels(NamedTuple):
    trees: Callable
    probability: Callable
    learn: Callable
    count_words: Callable


def _kernels() -> Kernels:
    """The mixer's per-bit work, compiled by numba on first use (and cached on disk): integer
    loops over the streams, which numpy would run as a hundred small calls a bit."""
    global _KERNELS
    if _KERNELS is None:
        import numba

        jit = numba.njit(cache=True, nogil=True)
        _KERNELS = Kernels(jit(_trees), jit(_probability), jit(_learn), jit(_count_words))
    return _KERNELS


_KERNELS: Kernels | None = None


def _trees(probs, counts, p_tree, c_tree):
    """The node masses of every source in heap order (node j's children are 2j and 2j + 1; the
    leaves, 256 .. 511, are not copied): `probs`, a tuple of the network's and the linear mix's
    distributions, (n, 256) float64, `counts` a tuple of (n, 256) integer arrays. Pairwise
    sums, as `p[..., 0::2] + p[..., 1::2]` level by level: the same on every machine."""
    for s in range(len(probs)):
        p = probs[s]
        for i in range(p.shape[0]):
            for j in range(128):
                p_tree[s, i, 128 + j] = p[i, 2 * j] + p[i, 2 * j + 1]
            for j in range(127, 0, -1):
                p_tree[s, i, j] = p_tree[s, i, 2 * j] + p_tree[s, i, 2 * j + 1]
    for s in range(len(counts)):
        c = counts[s]
        for i in range(c.shape[0]):
            for j in range(128):
                c_tree[s, i, 128 + j] = np.int64(c[i, 2 * j]) + np.int64(c[i, 2 * j + 1])
            for j in range(127, 0, -1):
                c_tree[s, i, j] = c_tree[s, i, 2 * j] + c_tree[s, i, 2 * j + 1]


def _probability(d, prefix, probs, counts, p_tree, c_tree, base, per_depth, running, predicted, match_input, weights, second,
                 stretch_table, squash_table, x, sets, dots, layer, on_path, final):
    """P(1) in 1/4096 of bit `d` of each stream's byte (`final`), its top bits being `prefix`;
    leaves the inputs `x`, weight sets, the mixers' outputs `dots` and `layer` for `_learn`."""
    n, sources = prefix.shape[0], c_tree.shape[0]
    shift = 8 - d
    for i in range(n):
        node, child = (1 << d) + prefix[i], 2 * ((1 << d) + prefix[i]) + 1
        for s in range(2):
            total = p_tree[s, i, node]
            v = 0
            if total > 0:
                ones = p_tree[s, i, child] if child < 256 else probs[s][i, child - 256]
                q = np.floor(ones * 4096.0 / total)
                v = stretch_table[min(max(int(q), 1), 4095)]
            x[i, s] = v
        for s in range(sources):
            total = c_tree[s, i, node]
            v = 0
            if total > 0:  # (ones + 0.4) / (total + 0.8)
                ones = c_tree[s, i, child] if child < 256 else np.int64(counts[s][i, child - 256])
                v = stretch_table[min(max(((10 * ones + 4) << 12) // (10 * total + 8), 1), 4095)]
            x[i, 2 + s] = v
        on = running[i] and (predicted[i] >> shift) == prefix[i]
        on_path[i] = on
        x[i, 2 + sources] = (2 * ((predicted[i] >> (shift - 1)) & 1) - 1) * match_input[i] if on else 0
        x[i, 3 + sources] = BIAS
        confidence = min(abs(x[i, 0]) >> 9, CONFIDENCE - 1)
        sets[i, 0] = base[i, 0] + d * per_depth[0] + on
        sets[i, 1] = base[i, 1] + d * per_depth[1] + on
        sets[i, 2] = base[i, 2] + d * per_depth[2] + confidence
        mixed = 0
        for m in range(MIXERS):
            dot = 0
            for j in range(x.shape[1]):
                dot += weights[sets[i, m], j] * x[i, j]
            dot = min(max(dot >> 16, -LIMIT), LIMIT)
            dots[i, m] = dot
            layer[i, m] = dot
            mixed += dot * second[d, m]
        layer[i, MIXERS] = BIAS
        mixed += BIAS * second[d, MIXERS]
        mixed = min(max(mixed >> 16, -LIMIT), LIMIT)
        final[i] = min(max(squash_table[mixed + LIMIT], 1), 4095)


def _learn(d, bits, predicted, run, on_path, x, sets, dots, layer, final, weights, second, hits, squash_table, sums):
    """Every weight used for bit `d` takes its step on the coded `bits`: the first layer's by the
    sum over the streams of each set (then * FIRST_RATE >> FIRST_SHIFT), the second layer's
    likewise; the match counts too."""
    n, m_inputs = x.shape[0], x.shape[1]
    shift = 8 - d
    for i in range(n):
        target = bits[i] << 12
        for m in range(MIXERS):
            err = target - squash_table[dots[i, m] + LIMIT]
            for j in range(m_inputs):
                sums[sets[i, m], j] += err * x[i, j]
    for i in range(n):
        for m in range(MIXERS):
            row = sets[i, m]
            for j in range(m_inputs):
                if sums[row, j] != 0:
                    weights[row, j] = min(max(weights[row, j] + ((sums[row, j] * FIRST_RATE) >> FIRST_SHIFT),
                                              -WEIGHT_LIMIT), WEIGHT_LIMIT)
                    sums[row, j] = 0
    for m in range(MIXERS + 1):
        total = 0
        for i in range(n):
            total += ((bits[i] << 12) - final[i]) * layer[i, m]
        second[d, m] = min(max(second[d, m] + (total >> SECOND_SHIFT), -WEIGHT_LIMIT), WEIGHT_LIMIT)
    for i in range(n):
        if on_path[i]:
            hits[run[i], 1 if ((predicted[i] >> (shift - 1)) & 1) == bits[i] else 0] += 1


class BitMixer:
    """The logistic stage of one group: weights shared by all its streams, learned as they code."""

    LEARNED = ("weights", "second", "hits")  # what `context_mix.learned` keeps

    def __init__(self, orders: int, streams: int = 0, words: bool = False):
        """`orders`: how many orders `ContextMixer` counts; with `words`, word contexts for
        `streams` streams as two more sources."""
        self.orders = orders + (2 if words else 0)  # the count sources
        self.inputs = 2 + self.orders + 2  # network, linear mix, counts, match, bias
        k = self.orders
        sets = (8 * (k + 1) * 2, 8 * CLASSES * (k + 1) * 2, 8 * CONFIDENCE)
        self.offsets = np.cumsum((0,) + sets[:-1])  # the three mixers' weight sets, in one table
        self.per_depth = np.array([2 * (k + 1), 2 * CLASSES * (k + 1), CONFIDENCE])
        self.weights = np.zeros((sum(sets), self.inputs), dtype=np.int64)
        self.weights[:, 1] = ONE  # start as the linear mix
        self.second = np.zeros((8, MIXERS + 1), dtype=np.int64)
        self.second[:, :MIXERS] = ONE // MIXERS
        self.hits = np.ones((MATCH_BUCKETS, 2), dtype=np.int64)  # how often a running match was right, by run
        self.words = Words(streams) if words else None
        self._sums = np.zeros_like(self.weights)

    def code(self, io, net: np.ndarray, mixed: np.ndarray, mixer, symbols: np.ndarray) -> np.ndarray:
        """Code one byte per stream as eight bits (`io.code`), under the network's distribution
        `net` (n, 256), `ContextMixer`'s `mixed` one and its state for this step (`mixer`, before
        its update); returns the bytes (decoded, or `symbols` when encoding)."""
        kernels = _kernels()
        n, k = len(net), self.orders
        sources = mixer.counts + (self.words.counts(n) if self.words else [])
        probs, counts = (np.ascontiguousarray(net), np.ascontiguousarray(mixed)), tuple(sources)
        p_tree, c_tree = np.empty((2, n, 256)), np.empty((k, n, 256), dtype=np.int64)
        kernels.trees(probs, counts, p_tree, c_tree)
        seen = (c_tree[:, :, 1] > 0).sum(0)  # how many sources have counts
        kind = BYTE_CLASS[(mixer.history[:n] & np.uint64(0xFF)).astype(np.int64)]
        if mixer.match:
            bucket, _, predicted, _ = mixer._last_match
            running, run = bucket > 0, np.minimum(mixer.run[:n], MATCH_BUCKETS - 1)
        else:
            running, predicted, run = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        hit = self.hits[run]
        match_input = stretch((hit[:, 1] << 12) // hit.sum(1))
        # each mixer's weight set at depth 0, but for the match (mixers 0 and 1) and the network's
        # confidence (mixer 2), which are known only at the bit
        base = np.stack([2 * seen, 2 * (kind * (k + 1) + seen), np.zeros(n, dtype=np.int64)], 1) + self.offsets
        x, sets = np.empty((n, self.inputs), dtype=np.int64), np.empty((n, MIXERS), dtype=np.int64)
        dots, layer = np.empty((n, MIXERS), dtype=np.int64), np.empty((n, MIXERS + 1), dtype=np.int64)
        on_path, final = np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.int64)
        binary = np.empty((n, 2))
        prefix = np.zeros(n, dtype=np.int64)
        symbols = np.asarray(symbols, dtype=np.int64)
        predicted = np.asarray(predicted, dtype=np.int64)
        for d in range(8):
            kernels.probability(d, prefix, probs, counts, p_tree, c_tree, base, self.per_depth, running, predicted, match_input, self.weights,
                        self.second, STRETCH, SQUASH, x, sets, dots, layer, on_path, final)
            binary[:, 0], binary[:, 1] = 4096 - final, final
            bit = np.asarray(io.code(Categorical(binary), (symbols >> (7 - d)) & 1), dtype=np.int64)
            kernels.learn(d, bit, predicted, run, on_path, x, sets, dots, layer, final, self.weights, self.second, self.hits,
                  SQUASH, self._sums)
            prefix = 2 * prefix + bit
        if (self.hits > 60000).any():
            self.hits = (self.hits + 1) >> 1
        if self.words:
            self.words.update(prefix)
        return prefix


class Words:
    """Each stream's word contexts (`BitMixer` with words): the counts of the bytes that
    followed (the word before, the word so far) and (the word so far) in everything coded,
    words being runs of ASCII letters, case folded. Integer hashing and counting: the same
    at both ends."""

    def __init__(self, streams: int):
        self.shift = np.uint64(64 - WORD_ROWS_LOG2)
        self.tables = [np.zeros((1 << WORD_ROWS_LOG2, 256), dtype=np.uint16) for _ in range(2)]
        self.current = np.zeros(streams, dtype=np.uint64)  # the hash of the word so far, 0 between words
        self.before = np.zeros(streams, dtype=np.uint64)  # the hash of the last whole word
        self._rows: list[np.ndarray] = []

    def counts(self, n: int) -> list[np.ndarray]:
        """The two contexts' counts (n, 256) for the first n streams (none for the word so far
        between words)."""
        current = self.current[:n]
        with np.errstate(over="ignore"):  # hashes wrap around, by design
            keys = ((self.before[:n] * _PAIR) ^ current, current * _PAIR + np.uint64(1))
            self._rows = [((key * HASH) >> self.shift).astype(np.int64) for key in keys]
        pair, word = (table[rows] for table, rows in zip(self.tables, self._rows))
        word[current == 0] = 0
        return [pair, word]

    def update(self, symbols: np.ndarray) -> None:
        """Count the bytes just coded (after `counts`) and move each stream's words on."""
        _kernels().count_words(self.tables[0], self.tables[1], self._rows[0], self._rows[1], np.asarray(symbols, dtype=np.int64),
                      self.current, self.before, _LETTER, _FOLDED, _WORD_PRIME)


def _count_words(pairs, words, pair_rows, word_rows, symbols, current, before, letter, folded, prime):
    """`Words.update`: each table counts its rows' bytes (a row about to saturate is halved
    first, keeping its proportions, as `ContextMixer` does), then each stream's word so far
    grows by a letter or, at any other byte, becomes the word before."""
    n = symbols.shape[0]
    for table, rows in ((pairs, pair_rows), (words, word_rows)):
        for i in range(n):
            if table[rows[i], symbols[i]] >= COUNT_MAX - n:  # n adds could land on one cell
                for b in range(256):
                    table[rows[i], b] >>= 1
        for i in range(n):
            table[rows[i], symbols[i]] += 1
    for i in range(n):
        b = symbols[i]
        if letter[b]:
            current[i] = (current[i] + folded[b] + np.uint64(1)) * prime
        else:
            if current[i] != 0:
                before[i] = current[i]
            current[i] = 0
