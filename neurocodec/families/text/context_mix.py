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

Three options, each off unless a file's header turns it on (files written before them decode
as they always did):
* `confirm`: each table row also keeps a 16-bit check of the context that owns it (from a
  second hash). A context whose check differs sees an empty row and, when its byte is
  counted, takes the row over, so two contexts that share a row no longer pollute each other's
  counts (as PAQ's hash confirmation).
* `classes`: the weights are also looked up by the kind of the byte before (lowercase,
  uppercase, space, line end, other): after a space the network is less sure than inside a word.
* `match` = L: a match model. The last L bytes of each stream are hashed to where they last
  occurred in the group; while the bytes that followed there keep coming, the next one is
  predicted, with a weight learned by how long the match has run.

Encoder and decoder make the same updates from the same bytes in the same order, with
integer counts, integer hashing, ties between streams broken by stream order and correctly
rounded float64 operations, so both compute bit-identical distributions on any machine.
"""

from __future__ import annotations

import numpy as np

HASH = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of ctx * HASH
CHECK_HASH = np.uint64(0xC2B2AE3D27D4EB4F)  # another odd constant: the top 16 bits are the check
SEEN_BUCKETS = 9  # n = 0, 1, 2, 3-4, 5-8, ..., 65-128, more
BUCKETS = 2 * SEEN_BUCKETS  # x (one byte followed so far, several)
MATCH_BUCKETS = 16  # no match; a match that has run 0-1, 2, ..., 14, 15 or more bytes
COUNT_MAX = np.iinfo(np.uint16).max
# The most memory the count tables of one mixer may take: 2**rows_log2 rows of 256 uint16
# counts per order. The shipped codec uses 3 orders of 2**18 rows, 384 MiB (pages a document
# never touches are never materialized, but they are address space all the same); a file may
# ask for 512 MiB. Before, a 300-byte file could ask for 4 x 8 GiB.
MAX_TABLE_BYTES = 1 << 29

# the kind of a byte, for `classes`: lowercase, uppercase, space, line end, anything else
BYTE_CLASS = np.full(256, 4, dtype=np.int64)
BYTE_CLASS[ord("a") : ord("z") + 1] = 0
BYTE_CLASS[ord("A") : ord("Z") + 1] = 1
BYTE_CLASS[ord(" ")] = 2
BYTE_CLASS[[ord("\n"), ord("\r")]] = 3
CLASSES = 5


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)) and np.isfinite(x)


def _last_of_each(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values of `rows`, the index of each one's last occurrence): where several
    streams write one table cell in a step, the last stream's write is the one kept, by rule
    rather than by whatever order numpy's fancy assignment happens to use."""
    distinct, first_from_end = np.unique(rows[::-1], return_index=True)
    return distinct, len(rows) - 1 - first_from_end


def learned(mixer) -> dict[str, np.ndarray]:
    """Copies of what a mixer has learned (its arrays named in `LEARNED` that it has), to start
    another one from."""
    return {k: getattr(mixer, k).copy() for k in mixer.LEARNED if hasattr(mixer, k)}


def start_from(mixer, state: dict[str, np.ndarray]) -> None:
    """Start `mixer` from what another one learned (`learned`); ValueError where the arrays differ."""
    for k, v in state.items():
        mine = getattr(mixer, k, None)
        if mine is None or mine.shape != v.shape or mine.dtype != v.dtype:
            raise ValueError(f"a mixer's learned {k} does not fit this one")
        mine[...] = v


class ContextMixer:
    LEARNED = ("weights", "match_weights")  # what `learned` keeps

    def __init__(self, n_streams: int, orders: list[int], rows_log2: int = 18, rate: float = 0.02, init: float = 0.3,
                 confirm: bool = False, classes: bool = False, match: int = 0, length: int = 0):
        """`length`: the most bytes a stream will code (the group's chunk), for `match`."""
        self.check(orders, rows_log2, rate, init, confirm, classes, match)
        self.orders = [int(k) for k in orders]
        self.shift = np.uint64(64 - rows_log2)
        self.rate = float(rate)
        # zero-filled pages are only materialized for the contexts a document really uses
        self.tables = [np.zeros((1 << rows_log2, 256), dtype=np.uint16) for _ in self.orders]
        self.checks = [np.zeros(1 << rows_log2, dtype=np.uint16) for _ in self.orders] if confirm else None
        self.classes = CLASSES if classes else 1
        self.weights = np.full((len(self.orders), BUCKETS, self.classes), float(init))
        self.weights[:, 0] = 0.0  # an unseen context: nothing to mix
        self.weights[:, SEEN_BUCKETS] = 0.0
        self.history = np.zeros(n_streams, dtype=np.uint64)  # the last 8 bytes of each stream
        self._last: list[tuple] = []  # per order, what the last mix() used: update() learns from it
        self._q = np.zeros((0, 256))  # the last mix() result
        self.match = int(match)
        if self.match:
            if length < 1:
                raise ValueError("a match model needs the length of the streams")
            self.length = int(length)
            self.coded = np.zeros((n_streams, self.length), dtype=np.uint8)  # every byte so far
            self.t = 0  # the step: every stream has coded its bytes 0..t-1
            # context -> stream * length + the step after it; four rows per byte of the group
            # (up to 2**24), as collisions cost more here than in the count tables
            self.where_shift = np.uint64(64 - min(max(int(4 * n_streams * self.length - 1).bit_length(), 8), 24))
            self.where = np.full(1 << (64 - int(self.where_shift)), -1, dtype=np.int32)
            self.pointer = np.full(n_streams, -1, dtype=np.int64)  # each stream's match, or -1
            self.run = np.zeros(n_streams, dtype=np.int64)  # bytes the match has predicted right
            self.match_weights = np.full((MATCH_BUCKETS, self.classes), float(init))
            self.match_weights[0] = 0.0

    @staticmethod
    def check(orders: list[int], rows_log2: int = 18, rate: float = 0.02, init: float = 0.3,
              confirm: bool = False, classes: bool = False, match: int = 0) -> None:
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
        if not (isinstance(confirm, bool) and isinstance(classes, bool)):
            raise ValueError("invalid context options: confirm and classes are true or false")
        if not (_is_int(match) and (match == 0 or 4 <= match <= 8)):
            raise ValueError(f"invalid match length {match!r:.20} (0, or 4 to 8 bytes)")

    def _context(self, k: int, n: int) -> np.ndarray:
        """The last k bytes (k <= 8) of each of the first n streams, as one integer."""
        return self.history[:n] & np.uint64((1 << (8 * k)) - 1)

    def _rows(self, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The table row of each stream's order-k context, and its 16-bit check (never 0, the
        check of a row nobody owns)."""
        ctx = self._context(k, n)
        rows = ((ctx * HASH) >> self.shift).astype(np.int64)
        check = ((ctx * CHECK_HASH) >> np.uint64(48)).astype(np.uint16) | np.uint16(1)
        return rows, check

    def mix(self, probs: np.ndarray) -> np.ndarray:
        """The mixed distribution for the first len(probs) streams; `probs` rows sum to 1."""
        n = len(probs)
        q = probs
        self._last = []
        self.counts = []  # per order, the counts each stream's context has seen (`BitMixer` reads them)
        kind = BYTE_CLASS[(self.history[:n] & np.uint64(0xFF)).astype(np.int64)] if self.classes > 1 else np.zeros(n, dtype=np.int64)
        self._kind = kind
        for j, (k, table) in enumerate(zip(self.orders, self.tables)):
            rows, check = self._rows(k, n)
            counts = table[rows]  # integers throughout, until the division
            owned = None
            if self.checks is not None:
                owned = self.checks[j][rows] == check
                counts[~owned] = 0  # another context's row: nothing seen
            self.counts.append(counts)
            seen = counts.sum(axis=1, dtype=np.int64)
            bucket = np.minimum(np.ceil(np.log2(np.maximum(seen, 0.5))) + 1, SEEN_BUCKETS - 1).astype(np.int64)
            bucket[seen == 0] = 0
            bucket += SEEN_BUCKETS * (counts.max(axis=1) < seen)  # several different bytes seen
            w = self.weights[j, bucket, kind][:, None]
            r = counts / np.maximum(seen, 1).astype(np.float64)[:, None]
            self._last.append((rows, bucket, q, r, w, check, owned))
            q = (1 - w) * q + w * r
        if self.match:
            q = self._mix_match(q, n, kind)
        self._q = q
        return q

    def _mix_match(self, q: np.ndarray, n: int, kind: np.ndarray) -> np.ndarray:
        pointer = self.pointer[:n]
        known = (pointer >= 0) & (pointer % self.length < self.t)  # a byte already coded
        predicted = self.coded.reshape(-1)[np.maximum(pointer, 0)].astype(np.int64)
        bucket = np.where(known, np.clip(self.run[:n], 1, MATCH_BUCKETS - 1), 0)
        w = self.match_weights[bucket, kind]
        self._last_match = (bucket, q, predicted, w)
        mixed = (1 - w)[:, None] * q  # (1 - w) q + w r, r one-hot on the predicted byte
        mixed[np.arange(n), predicted] += w
        return mixed

    def update(self, symbols: np.ndarray) -> None:
        """Learn from `symbols`, the bytes just coded for the streams `mix` was last called for."""
        s = np.asarray(symbols, dtype=np.int64)
        n = len(s)
        idx = np.arange(n)
        q_final = self._q[idx, s]
        after = np.ones(n)  # d q_final / d q_j: the product of (1 - w) of the later stages
        if self.match:
            bucket, q_in, predicted, w = self._last_match
            agrees = predicted == s
            grad = (agrees - q_in[idx, s]) / q_final
            self.match_weights = np.clip(self.match_weights + self._step(grad, bucket, MATCH_BUCKETS, [0]), 0.0, 0.98)
            after = after * (1 - w)
            hit = (bucket > 0) & agrees  # bucket 0: no byte known to predict
        for j in range(len(self.orders) - 1, -1, -1):
            rows, bucket, q_in, r, w, check, owned = self._last[j]
            grad = after * (r[idx, s] - q_in[idx, s]) / q_final  # d log q_final / d w_j
            self.weights[j] = np.clip(self.weights[j] + self._step(grad, bucket, BUCKETS, [0, SEEN_BUCKETS]), 0.0, 0.98)
            after = after * (1 - w[:, 0])
            table = self.tables[j]
            if owned is not None and not owned.all():  # take the rows over: empty, with our check
                taken, last = _last_of_each(rows[~owned])
                table[taken] = 0
                self.checks[j][taken] = check[~owned][last]
                counted = self.checks[j][rows] == check
                rows, s_j = rows[counted], s[counted]
            else:
                s_j = s
            full = table[rows, s_j] >= COUNT_MAX - n  # n adds could land on one cell
            if full.any():  # halve a saturated context, keeping its proportions
                table[rows[full]] >>= 1
            np.add.at(table, (rows, s_j), 1)
        self.history[:n] = (self.history[:n] << np.uint64(8)) | s.astype(np.uint64)
        if self.match:
            self._follow(s, n, hit)

    def _step(self, grad: np.ndarray, bucket: np.ndarray, buckets: int, frozen: list[int]) -> np.ndarray:
        """The gradient step of the weights of (bucket, kind): the mean over the streams that
        used each, times the rate; the buckets in `frozen` never move."""
        key = bucket * self.classes + self._kind
        total = np.bincount(key, weights=grad, minlength=buckets * self.classes)
        used = np.bincount(key, minlength=buckets * self.classes)
        step = (self.rate * total / np.maximum(used, 1)).reshape(buckets, self.classes)
        step[frozen] = 0.0
        return step

    def _follow(self, s: np.ndarray, n: int, hit: np.ndarray) -> None:
        """The match model after coding `s` at step t: extend the matches that predicted it
        (`hit`), look the others up by their last `match` bytes, and remember where these
        contexts are."""
        t = self.t
        self.coded[:n, t] = s
        pointer = self.pointer[:n]
        pointer = np.where(hit & ((pointer + 1) % self.length != 0), pointer + 1, -1)
        self.run[:n] = np.where(pointer >= 0, self.run[:n] + 1, 0)
        if t + 1 >= self.match and t + 1 < self.length:
            rows = ((self._context(self.match, n) * HASH) >> self.where_shift).astype(np.int64)
            found = (pointer < 0) & (self.where[rows] >= 0)
            pointer = np.where(found, self.where[rows].astype(np.int64), pointer)
            self.run[:n][found] = 0
            distinct, last = _last_of_each(rows)
            self.where[distinct] = last * self.length + t + 1
        self.pointer[:n] = pointer
        self.t += 1
