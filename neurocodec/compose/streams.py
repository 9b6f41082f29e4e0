"""Streams: where a coding step's symbols go to, or come from.

Every step (`compose.steps`) is written against two operations, `push(symbols, dist)` and
`pop(dist) -> symbols`; the stream it runs on decides what they mean:

    stream    push               pop                 order
    Encoder   writes             (misuse)            queue: symbols come back in push order
    Decoder   (misuse)           reads               queue
    Stack     writes             reads, or borrows   stack: a pop returns the last push
              bits (bits-back)
    Meter     counts -log2 p     (misuse)            counts without coding

Any stream can also meter (`meter=True`): `bits` is then the model's ideal code length of
what went through it, -log2 p of every symbol written minus that of every symbol borrowed,
which tests and benchmarks compare with the real size. `trace=True` records a fingerprint of
every distribution used, with the name of the step that used it, so `compose.check` can say
where a decoder first computed something other than its encoder.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct

import numpy as np

from ..entropy import AnsCoder, Distribution, RangeDecoder, RangeEncoder
from ..entropy.coders import SPARE_BITS, least_bits
from ..errors import FormatError, NeurocodecError


class StepError(NeurocodecError):
    """A coding step was misused (a push on a reading stream, bits-back on a queue, a decoder
    that computed other distributions than its encoder); the message names the step."""


class Stream:
    lifo = False  # a stack: pops return the symbols of the last pushes
    decoding = False  # the decoder's side: symbols come out of the stream

    def __init__(self, meter: bool = False, trace: bool = False, digest: bool = False):
        self.meter = meter
        self.digest = hashlib.blake2b(digest_size=16) if digest else None  # of every symbol, in coding order
        self.bits = 0.0
        self.trace: list[tuple[str, str]] | None = [] if trace else None
        self.expect: list[tuple[str, str]] | None = None  # a decoder checked against its encoder's trace
        self._names: list[str] = []

    # --- what steps call -------------------------------------------------------------
    def push(self, symbols: np.ndarray, dist: Distribution) -> None:
        symbols = np.asarray(symbols).ravel()
        self._trace(dist)
        self._push(symbols, dist)
        self._meter(dist, symbols, +1 if not self.decoding else -1)

    def pop(self, dist: Distribution, n: int | None = None) -> np.ndarray:
        self._trace(dist)
        symbols = self._pop(dist, n)
        self._meter(dist, symbols, -1 if not self.decoding else +1)
        return symbols

    def _hash(self, symbols: np.ndarray) -> None:
        if self.digest is not None:
            self.digest.update(np.asarray(symbols, dtype="<i8").tobytes())

    @contextlib.contextmanager
    def at(self, name: str):
        """Name what is coded inside the block (nested names are joined with '/')."""
        self._names.append(name)
        try:
            yield
        finally:
            self._names.pop()

    @contextlib.contextmanager
    def at_path(self, where: str):
        """Code inside the block as if at the full step path `where` (a buffered push)."""
        saved, self._names = self._names, where.split("/")
        try:
            yield
        finally:
            self._names = saved

    @property
    def where(self) -> str:
        return "/".join(self._names) or "(top level)"

    # --- what each stream implements ---------------------------------------------------
    def _push(self, symbols, dist):
        raise StepError(f"step '{self.where}' pushes symbols onto a {type(self).__name__}, which only reads")

    def _pop(self, dist, n):
        raise StepError(f"step '{self.where}' pops symbols from a {type(self).__name__}, which only writes")

    def _meter(self, dist: Distribution, symbols: np.ndarray, sign: int) -> None:
        if self.meter and symbols.size:
            self.bits += sign * float(dist.bits(symbols).sum())

    def _trace(self, dist: Distribution) -> None:
        if self.trace is None:
            return
        entry = (self.where, fingerprint(dist))
        k = len(self.trace)
        self.trace.append(entry)
        if self.expect is None:
            return
        if k >= len(self.expect):
            raise StepError(f"step '{entry[0]}' codes more symbols in decoding than in encoding (operation {k})")
        where, fp = self.expect[k]
        if where != entry[0]:
            raise StepError(f"decoding reached step '{entry[0]}' where encoding coded step '{where}' (operation {k}): "
                            "the two do not run the same steps in the same order")
        if fp != entry[1]:
            raise StepError(f"step '{where}' (operation {k}): decoding built another distribution than encoding; "
                            "the model reads symbols that are not decoded yet, or something only the encoder has")


def fingerprint(dist: Distribution) -> str:
    """A short digest of everything that defines `dist` as a coder sees it."""
    h = hashlib.blake2b(type(dist).__name__.encode(), digest_size=8)
    h.update(struct.pack("<qq", dist.lo, -1 if dist.n is None else dist.n))
    for part in dist.model()[1:]:
        h.update(np.ascontiguousarray(part).tobytes())
    for name in ("probs", "means", "scales", "weights", "log_scales"):
        value = getattr(dist, name, None)
        if isinstance(value, np.ndarray):
            h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


class Encoder(Stream):
    """The range coder's writing end (a queue)."""

    def __init__(self, meter: bool = False, trace: bool = False, digest: bool = False):
        super().__init__(meter, trace, digest)
        self.coder = RangeEncoder()

    def _push(self, symbols, dist):
        self.coder.encode(symbols, dist)
        self._hash(symbols)

    def to_bytes(self) -> bytes:
        return self.coder.to_bytes()


class Decoder(Stream):
    """The range coder's reading end: pops come in the order the encoder pushed.

    With `bound`, every pop adds a lower bound on the bits its symbols cost the encoder
    (`least_bits`) and the decoding stops, `FormatError`, as soon as they add up to more than
    the data holds: damaged or crafted data is refused after about as much work as its length
    pays for, not after all the symbols its header asks for."""

    decoding = True

    def __init__(self, data: bytes, meter: bool = False, trace: bool = False, digest: bool = False,
                 bound: bool = False):
        super().__init__(meter, trace, digest)
        self.coder = RangeDecoder(data)
        self.budget = 8 * len(data) + SPARE_BITS if bound else None
        self.spent = 0.0

    def _pop(self, dist, n):
        symbols = self.coder.decode(dist, n)
        if self.budget is not None and symbols.size:
            self.spent += least_bits(dist, symbols)
            if self.spent > self.budget:
                raise FormatError(f"corrupted .ncd file: a coded stream of {self.budget - SPARE_BITS} bits "
                                  f"decodes to symbols of at least {self.spent:.0f}")
        self._hash(symbols)
        return symbols

    def check_exhausted(self) -> None:
        """A decoder must end exactly where its data ends."""
        if not self.coder.exhausted():
            raise FormatError("corrupted .ncd file: a coded stream does not end where its decoding ends")


class Meter(Stream):
    """Counts the ideal bits of what is pushed, coding nothing (a queue that only writes)."""

    def __init__(self, trace: bool = False):
        super().__init__(meter=True, trace=trace)

    def _push(self, symbols, dist):
        dist.to_index(symbols)  # the same support check a coder makes


class Stack(Stream):
    """An ANS stack (bits-back coding). Its first pops need bits to borrow: the stack starts
    from `seed`, a fixed sequence of pseudo-random words that both ends rebuild, and
    `to_bytes` stores only the part of it the coding touched (`from_bytes` restores it)."""

    lifo = True

    def __init__(self, seed: np.ndarray, decoding: bool = False, meter: bool = False, trace: bool = False,
                 words: bytes | None = None):
        super().__init__(meter, trace)
        self.decoding = decoding
        self.seed = np.asarray(seed, dtype=np.uint32)
        start = self.seed.astype("<u4").tobytes() if words is None else words
        self.coder = AnsCoder(start)

    def _push(self, symbols, dist):
        self.coder.push(symbols, dist)

    def _pop(self, dist, n):
        return self.coder.pop(dist, n)

    def to_bytes(self) -> bytes:
        """u32 count of the seed words kept at the bottom, then the words above them."""
        words = np.frombuffer(self.coder.to_bytes(), dtype="<u4")
        n = min(len(words), len(self.seed))
        same = words[:n] == self.seed[:n]
        kept = n if same.all() else int(np.argmin(same))
        return struct.pack("<I", kept) + words[kept:].tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, seed: np.ndarray, meter: bool = False, trace: bool = False) -> "Stack":
        if len(data) < 4 or (len(data) - 4) % 4:
            raise FormatError("corrupted .ncd file: bad stack chunk length")
        (kept,) = struct.unpack("<I", data[:4])
        seed = np.asarray(seed, dtype=np.uint32)
        if kept > len(seed):
            raise FormatError("corrupted .ncd file: bad stack seed length")
        return cls(seed, decoding=True, meter=meter, trace=trace, words=seed[:kept].astype("<u4").tobytes() + data[4:])

    def check_returned(self) -> None:
        """A decoder's stack must end as the encoder's began: exactly the seed."""
        if self.coder.to_bytes() != self.seed.astype("<u4").tobytes():
            raise FormatError("corrupted .ncd file: the stack did not return to its seed")


def seed_words(n: int, seed: int = 0x6269_7473) -> np.ndarray:
    """`n` fixed pseudo-random nonzero words for the bottom of a stack."""
    return np.random.default_rng(seed).integers(1, 2**32, n, dtype=np.uint32)
