"""In-document statistics mixed into a network's next-byte distribution.

A byte model trained on other books does not know this document's names and phrases. While a
group of chunks is coded, `ContextMixer` counts which byte followed each order-k context (the
previous k bytes, hashed into a table) in everything coded so far, across all chunks of the
group, and mixes those counts into the network's distribution, one order after another:

    q = (1 - w) * q + w * counts / n

The weight w is learned while coding: it is looked up by how often the context was seen (n,
in powers of two) and whether only one byte ever followed it, and after each byte every
weight used takes a gradient step on the code length -log q(byte). So a document the network
already predicts well keeps small weights, and one full of its own names gets large ones.
Encoder and decoder make the same updates from the same bytes in the same order, with
integer counts and correctly rounded float64 operations, so both compute bit-identical
distributions on any machine.
"""

from __future__ import annotations

import numpy as np

HASH = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of ctx * HASH
SEEN_BUCKETS = 9  # n = 0, 1, 2, 3-4, 5-8, ..., 65-128, more
BUCKETS = 2 * SEEN_BUCKETS  # x (one byte followed so far, several)
COUNT_MAX = np.iinfo(np.uint16).max
# The most memory the count tables of one mixer may take: 2**rows_log2 rows of 256 uint16
# counts per order. The shipped codec uses 2 orders of 2**18 rows, 256 MiB (pages a document
# never touches are never materialized, but they are address space all the same); a file may
# ask for twice that. Before, a 300-byte file could ask for 4 x 8 GiB.
MAX_TABLE_BYTES = 1 << 29


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)) and np.isfinite(x)


class ContextMixer:
    def __init__(self, n_streams: int, orders: list[int], rows_log2: int = 18, rate: float = 0.02, init: float = 0.3):
        self.check(orders, rows_log2, rate, init)
        self.orders = [int(k) for k in orders]
        self.shift = np.uint64(64 - rows_log2)
        self.rate = float(rate)
        # zero-filled pages are only materialized for the contexts a document really uses
        self.tables = [np.zeros((1 << rows_log2, 256), dtype=np.uint16) for _ in self.orders]
        self.weights = np.full((len(self.orders), BUCKETS), float(init))
        self.weights[:, 0] = 0.0  # an unseen context: nothing to mix
        self.weights[:, SEEN_BUCKETS] = 0.0
        self.history = np.zeros(n_streams, dtype=np.uint64)  # the last 8 bytes of each stream
        self._last: list[tuple] = []  # per order, what the last mix() used: update() learns from it
        self._q = np.zeros((0, 256))  # the last mix() result

    @staticmethod
    def check(orders: list[int], rows_log2: int = 18, rate: float = 0.02, init: float = 0.3) -> None:
        """Raise ValueError for arguments a mixer does not take (real integers and numbers
        only: a file's header may say anything), before anything is allocated."""
        if not (isinstance(orders, (list, tuple)) and 1 <= len(orders) <= 4 and all(_is_int(k) and 1 <= k <= 7 for k in orders)):
            raise ValueError(f"invalid context orders {orders!r:.60}")
        if not (_is_int(rows_log2) and 8 <= rows_log2 <= 24):
            raise ValueError(f"invalid context table size 2**{rows_log2!r:.20}")
        if len(orders) * (256 * 2) << int(rows_log2) > MAX_TABLE_BYTES:
            raise ValueError(f"context tables of {len(orders)} x 2**{rows_log2} rows are over {MAX_TABLE_BYTES >> 20} MiB")
        if not (_is_real(rate) and _is_real(init) and 0 < rate < 1 and 0 <= init < 1):
            raise ValueError("invalid context mixing rate or initial weight")

    def mix(self, probs: np.ndarray) -> np.ndarray:
        """The mixed distribution for the first len(probs) streams; `probs` rows sum to 1."""
        n = len(probs)
        q = probs
        self._last = []
        for j, (k, table) in enumerate(zip(self.orders, self.tables)):
            ctx = self.history[:n] & np.uint64((1 << (8 * k)) - 1)
            rows = ((ctx * HASH) >> self.shift).astype(np.int64)
            counts = table[rows].astype(np.float64)
            seen = counts.sum(axis=1)
            bucket = np.minimum(np.ceil(np.log2(np.maximum(seen, 0.5))) + 1, SEEN_BUCKETS - 1).astype(np.int64)
            bucket[seen == 0] = 0
            bucket += SEEN_BUCKETS * (counts.max(axis=1) < seen)  # several different bytes seen
            w = self.weights[j, bucket][:, None]
            r = counts / np.maximum(seen, 1)[:, None]
            self._last.append((rows, bucket, q, r, w))
            q = (1 - w) * q + w * r
        self._q = q
        return q

    def update(self, symbols: np.ndarray) -> None:
        """Learn from `symbols`, the bytes just coded for the streams `mix` was last called for."""
        s = np.asarray(symbols, dtype=np.int64)
        n = len(s)
        idx = np.arange(n)
        q_final = self._q[idx, s]
        after = np.ones(n)  # d q_final / d q_j: the product of (1 - w) of the later stages
        for j in range(len(self.orders) - 1, -1, -1):
            rows, bucket, q_in, r, w = self._last[j]
            grad = after * (r[idx, s] - q_in[idx, s]) / q_final  # d log q_final / d w_j
            total = np.bincount(bucket, weights=grad, minlength=BUCKETS)
            used = np.bincount(bucket, minlength=BUCKETS)
            step = self.rate * total / np.maximum(used, 1)
            step[[0, SEEN_BUCKETS]] = 0.0
            self.weights[j] = np.clip(self.weights[j] + step, 0.0, 0.98)
            after = after * (1 - w[:, 0])
            table = self.tables[j]
            full = table[rows, s] >= COUNT_MAX - n  # n adds could land on one cell
            if full.any():  # halve a saturated context, keeping its proportions
                table[rows[full]] >>= 1
            np.add.at(table, (rows, s), 1)
        self.history[:n] = (self.history[:n] << np.uint64(8)) | s.astype(np.uint64)
