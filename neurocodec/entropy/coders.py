"""Range coder (queue) and ANS (stack) over constriction, taking neurocodec distributions.

Compressed data is a sequence of 32-bit words; as bytes it is little-endian. Garbage given to
a decoder yields garbage symbols or a `FormatError`, never a crash: the container's chunk
checksums are what reject corrupted data before it reaches a decoder.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import FormatError
from .distributions import Distribution


def _words(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise FormatError("corrupted entropy-coded data (length is not a multiple of 4)")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def _count(dist: Distribution, n: int | None) -> int:
    if dist.n is not None:
        if n is not None and n != dist.n:
            raise ValueError(f"asked for {n} symbols of a batch of {dist.n} distributions")
        return dist.n
    if n is None:
        raise ValueError("a shared distribution needs the number of symbols")
    return n


def _decode(coder, dist: Distribution, n: int | None) -> np.ndarray:
    """`n` symbols from a constriction decoder (queue or stack) under `dist`."""
    n = _count(dist, n)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    model = dist.model()
    try:
        idx = coder.decode(model[0], n) if len(model) == 1 else coder.decode(*model)
    except (ValueError, RuntimeError, AssertionError) as e:  # constriction rejects invalid data
        raise FormatError(f"corrupted entropy-coded data ({e})") from None
    return dist.from_index(idx)


def _check(symbols: np.ndarray, dist: Distribution) -> np.ndarray:
    s = np.asarray(symbols).ravel()
    if dist.n is not None and s.size != dist.n:
        raise ValueError(f"{s.size} symbols for a batch of {dist.n} distributions")
    return dist.to_index(s)


class RangeEncoder:
    def __init__(self):
        self._coder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, dist: Distribution) -> None:
        idx = _check(symbols, dist)
        if idx.size:
            self._coder.encode(idx, *dist.model())

    def num_bits(self) -> int:
        return int(self._coder.num_bits())

    def to_bytes(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class RangeDecoder:
    def __init__(self, data: bytes):
        try:
            self._coder = constriction.stream.queue.RangeDecoder(_words(data))
        except ValueError as e:
            raise FormatError(f"corrupted entropy-coded data ({e})") from None

    def decode(self, dist: Distribution, n: int | None = None) -> np.ndarray:
        return _decode(self._coder, dist, n)

    def exhausted(self) -> bool:
        """Whether the data ended where the decoding did (a decoder that did not read all of
        it, or would need more, decoded something else than was written)."""
        return bool(self._coder.maybe_exhausted())


# constriction quantizes every probability to a multiple of 2**-24 and gives each symbol at
# least one unit, so the probability it codes with is at most p + 2**-23; the interval the
# range coder keeps for a symbol is at most that share of the last, so a stream of N words
# holds symbols of at most 32 N + 64 bits of this measure (plus a margin for rounding)
QUANTUM = 2.0**-23
SPARE_BITS = 256


def least_bits(dist: Distribution, symbols: np.ndarray) -> float:
    """A lower bound on the bits the range coder spent on `symbols` under `dist`: -log2 of
    (p + 2**-23), from the model's float probabilities p. A decoder whose symbols add up to
    more than its data holds (`SPARE_BITS` aside) has read past the end of what was written."""
    with np.errstate(divide="ignore"):  # a float probability of 0 costs 23 bits here
        return float(-np.log2(np.exp2(-dist.bits(symbols)) + QUANTUM).sum())


class AnsCoder:
    """A stack: `pop` returns the symbols of the last `push` with the same distributions.

    Pushing encodes in reverse so that a pop yields the symbols in their original order.
    Popping from data that was never pushed (bits-back's "borrowed" bits) is allowed: it
    decodes whatever the bits say under the given distributions.
    """

    def __init__(self, data: bytes | None = None):
        stack = constriction.stream.stack
        try:
            self._coder = stack.AnsCoder() if data is None else stack.AnsCoder(_words(data))
        except ValueError as e:  # e.g. data ending in a zero word, which no encoder writes
            raise FormatError(f"corrupted entropy-coded data ({e})") from None

    def push(self, symbols: np.ndarray, dist: Distribution) -> None:
        idx = _check(symbols, dist)
        if idx.size:
            self._coder.encode_reverse(idx, *dist.model())

    def pop(self, dist: Distribution, n: int | None = None) -> np.ndarray:
        return _decode(self._coder, dist, n)

    def num_bits(self) -> int:
        return int(self._coder.num_bits())

    def is_empty(self) -> bool:
        return bool(self._coder.is_empty())

    def to_bytes(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()
