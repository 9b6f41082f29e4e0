"""LikelihoodCodec: a model that outputs distributions in, a codec that writes .ncd files out.

The input (an HxWx3 image, or bytes seen as a uint8 array) is cut into independent parts by
`plan`; each part is one or more regions, coded by the step `part_step` builds for their
shapes onto a fresh stream of its own (the range coder, or an ANS stack for bits-back), and
each stream becomes one container chunk. Parts bound memory whatever the input's size and
can be decoded independently. The header carries the parameters `plan` and `part_step` need,
so the tiling travels with the file.

A user's model needs none of the overrides: give `step(shape) -> Step` for the whole input

    codec = LikelihoodCodec("my-pixels", step=lambda shape: Autoregressive(...), model=net)
    blob = codec.encode(image); codec.decode(blob)

and the codec's weights digest is taken from `model`'s state, so a file never decodes with
other weights. A family's codec subclasses it and overrides `params`, `plan`, `part_step`.

Networks that feed a coder should run in neurocodec's exact mode (`neurocodec.exact`); this
class runs every part inside `exact.exact_mode()` on one torch thread (`exact=True`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import threading
from typing import Any, Callable

import numpy as np

from ..codec import Codec, one_thread, tile_grid
from ..container import Header
from .. import limits
from ..errors import FormatError, IntegrityError, NeurocodecError
from .steps import Each, Step
from .streams import Decoder, Encoder, Meter, Stack, StepError, Stream, seed_words

Region = tuple  # a tuple of slices into the input array


def state_digest(module) -> bytes:
    """SHA-256 of a torch module's state (names, dtypes, shapes and values): what a file
    written with it records, so it never decodes under other weights."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


class LikelihoodCodec(Codec):
    coder = "range"  # "range" (a queue) or "ans" (a stack, for bits-back)
    effort = 0  # of the encode in progress (see Codec.efforts)
    exact = True  # run parts in exact mode on one thread
    seed_size = 1 << 12  # words at the bottom of an ANS stack, for the first borrowed bits
    # The most samples (pixels of an image, bytes of a text) one part may hold per byte of its
    # container chunk, plus that many once; None leaves only the container's bound over the
    # whole payload (limits.SAMPLES_PER_PAYLOAD_BYTE). A decoder's work grows with the samples
    # it decodes, and a crafted chunk can make it decode garbage for as long as the header
    # says, so a family sets this from the most compressible inputs its encoder was measured
    # on, with a margin; the encoder refuses to write a part over it (never seen).
    samples_per_chunk_byte: int | None = None
    # Parts are coded on as many threads as torch may use (`torch.get_num_threads()`; one on
    # a dask worker), each on one torch thread: set it where coding a part keeps no state on
    # the codec object. The file is the same; the time falls with the cores.
    parallel_parts = False
    # Torch threads one part may use when a file's parts are coded one at a time: 1 for
    # codecs of many small steps (`codec.one_thread` says why); None, all of torch's threads,
    # for codecs of a few large passes. The file is the same either way.
    part_threads: int | None = 1
    # Lossy files carry a digest of their coded symbols; those of codecs that shipped before
    # it existed (hyperprior, context) may lack it and still decode. A family first released
    # with the digest sets this False, so a file without one is refused, not trusted.
    digest_optional = True
    # The range decoder stops as soon as the symbols it decoded cost more bits than its data
    # holds (`streams.Decoder`'s bound): for codecs whose samples can cost almost nothing, so
    # that `samples_per_chunk_byte` must stay loose (text), and whose distributions are cheap
    # to evaluate once more per symbol.
    bound_decoding = False

    def __init__(self, name: str, step: Callable[[tuple], Step] | None = None, *, modality: str = "image",
                 lossless: bool = True, coder: str | None = None, model=None, tile: int | None = None,
                 config: dict | None = None, weights_digest: bytes | None = None):
        config = dict(config or {}, name=name)
        if weights_digest is None:
            weights_digest = state_digest(model) if model is not None else bytes(32)
        super().__init__(config, weights_digest)
        self.modality, self.lossless = modality, lossless
        self.coder = coder or self.coder
        if self.coder not in ("range", "ans"):
            raise StepError(f"codec '{name}': coder must be 'range' or 'ans', got {self.coder!r}")
        self.model, self._step, self.tile = model, step, tile
        self._metering: float | None = None
        self._thread = threading.local()  # the digest of the symbols of the part just coded

    # --- what a family may override ------------------------------------------------------
    def params(self, x: np.ndarray, quality: int | None) -> dict:
        """The parameters the decoder needs, stored in the header."""
        return {} if self.tile is None else {"tile": self.tile}

    def check_params(self, params: dict) -> dict:
        """The header's parameters, validated (FormatError otherwise)."""
        if self.tile is None:
            return params
        t = params.get("tile")
        if not (type(t) is int and t > 0):  # not True, 1.0 or "1"
            raise FormatError(f"corrupted .ncd file: invalid '{self.name}' parameters")
        return params

    def plan(self, shape: tuple, params: dict) -> list[list[Region]]:
        """Independent parts, each a list of regions coded together on one stream."""
        if self.modality == "image" and "tile" in params:
            return [[(slice(r, r + h), slice(c, c + w))] for r, c, h, w in tile_grid(shape[0], shape[1], params["tile"])]
        return [[tuple(slice(0, s) for s in shape)]]

    def count_parts(self, shape: tuple, params: dict) -> int:
        """How many parts `plan` makes, without making them: a decoder compares it with the
        file's chunks before it builds a plan, which a crafted header could make huge. A
        family that overrides `plan` should override this too (the default builds the plan)."""
        if type(self).plan is LikelihoodCodec.plan:
            if self.modality == "image" and "tile" in params:
                return -(-shape[0] // params["tile"]) * -(-shape[1] // params["tile"])
            return 1
        return len(self.plan(shape, params))

    def part_step(self, shapes: list[tuple], params: dict) -> Step:
        """The step coding the list of arrays of one part (by default, `step` for each)."""
        if self._step is None:
            raise NotImplementedError(f"{type(self).__name__} must give `step` or override part_step")
        return Each([self._step(s) for s in shapes])

    def stack_seed(self, params: dict) -> np.ndarray:
        return seed_words(self.seed_size)

    # --- streams -------------------------------------------------------------------------
    def writer(self, params: dict, **kw) -> Stream:
        return Stack(self.stack_seed(params), **kw) if self.coder == "ans" else Encoder(**kw)

    def reader(self, data: bytes, params: dict, **kw) -> Stream:
        if self.coder == "ans":
            return Stack.from_bytes(data, self.stack_seed(params), **kw)
        return Decoder(data, bound=self.bound_decoding, **kw)

    def running(self, set_threads: bool = True):
        """The context every part is coded in (per thread; with `set_threads`, one torch
        thread for codecs of small steps, a setting of the whole process)."""
        import torch

        from .. import exact

        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        if self.exact:
            stack.enter_context(exact.exact_mode())
        if set_threads and self.part_threads == 1:
            stack.enter_context(one_thread())
        return stack

    def _each_part(self, code: Callable, items: list, desc: str) -> list:
        """code(item) for every part, in order, inside `running()`: on several threads where
        the codec allows it (`parallel_parts`), else here."""
        import torch

        threads = min(len(items), torch.get_num_threads()) if self.parallel_parts and self._metering is None else 1
        if threads <= 1:
            with self.running():
                return [code(item) for item in _progress(items, desc)]

        def run(item):
            with self.running(set_threads=False):  # torch's thread count is set once, below
                return code(item)

        with one_thread(), concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return list(_progress(pool.map(run, items), desc, len(items)))

    # --- coding --------------------------------------------------------------------------
    def encode_chunks(self, x: Any, quality: int | None, effort: int = 0) -> tuple[dict, list[bytes]]:
        arr = _as_array(x)
        self.effort = effort  # read by an encoder-side search (and `params`); the decoder never sees it
        params = self.params(arr, quality)
        check = _symbols_check(self)

        def code(part):
            chunk = self.encode_part([arr[r] for r in part], params, **({"digest": True} if check else {}))
            try:  # never write a part that decoders would refuse
                self.check_part([_shape(arr.shape, r) for r in part], len(chunk), params)
            except FormatError:
                raise NeurocodecError(f"codec '{self.name}' coded a part in fewer bytes than its decoder "
                                      "accepts; please report this") from None
            return chunk, getattr(self._thread, "digest", None)

        coded = self._each_part(code, self.plan(arr.shape, params), "encoding")
        if check is not None:
            for _, digest in coded:
                check.update(digest)
            params = dict(params, symbols=check.hexdigest())
        return params, [chunk for chunk, _ in coded]

    def encode_part(self, values: list[np.ndarray], params: dict, **kw) -> bytes:
        stream = self.writer(params, meter=self._metering is not None, **kw)
        self.part_step([v.shape for v in values], params).push(stream, values)
        if self._metering is not None:
            self._metering += stream.bits
        if stream.digest is not None:
            self._thread.digest = stream.digest.digest()
        return stream.to_bytes()

    def decode_chunks(self, header: Header, chunks: list[bytes]) -> Any:
        params = self.check_params(header.params)
        shape = tuple(header.shape)
        # the parts are counted, then checked against their chunks, before any is decoded
        count = self.count_parts(shape, params)
        if count != len(chunks):
            raise FormatError(f"corrupted .ncd file: {len(chunks)} chunks where '{self.name}' codes {count} parts")
        plan = self.plan(shape, params)
        if len(plan) != count:
            raise StepError(f"codec '{self.name}': count_parts says {count} parts, plan makes {len(plan)}")
        for part, data in zip(plan, chunks):
            self.check_part([_shape(shape, r) for r in part], len(data), params)
        out = np.empty(shape, dtype=np.uint8)
        expected = header.params.get("symbols")
        check = _symbols_check(self) if "symbols" in header.params else None
        if "symbols" in header.params and (check is None or not _is_digest(expected, check.digest_size)):
            raise FormatError(f"corrupted .ncd file: invalid '{self.name}' symbols digest")
        if check is None and not self.digest_optional and _symbols_check(self) is not None:
            raise FormatError(f"corrupted .ncd file: '{self.name}' files carry a symbols digest, this one has none")

        def code(item):
            part, data = item
            values = self.decode_part(data, [_shape(shape, r) for r in part], params, **({"digest": True} if check else {}))
            for region, value in zip(part, values):
                out[region] = value
            return getattr(self._thread, "digest", None)

        digests = self._each_part(code, list(zip(plan, chunks)), "decoding")
        if check is not None:
            for digest in digests:
                check.update(digest)
        if check is not None and check.hexdigest() != expected:
            raise IntegrityError(f"decoded symbols of codec '{self.name}' do not match the encoder's: the file is damaged")
        return out.tobytes() if self.modality == "text" else out

    def check_part(self, shapes: list[tuple], chunk_bytes: int, params: dict) -> None:
        """Refuse (FormatError) a part of arrays of `shapes` that a chunk of `chunk_bytes`
        bytes cannot hold (by default: over `samples_per_chunk_byte`)."""
        limits.check_part_size(self.name, self.modality, shapes, chunk_bytes, self.samples_per_chunk_byte)

    def decode_part(self, data: bytes, shapes: list[tuple], params: dict, **kw) -> list[np.ndarray]:
        stream = self.reader(data, params, **kw)
        values = self.part_step(shapes, params).pop(stream)
        if isinstance(stream, Stack):
            stream.check_returned()
        else:
            stream.check_exhausted()
        if stream.digest is not None:
            self._thread.digest = stream.digest.digest()
        return values

    # --- measuring and checking -----------------------------------------------------------
    def measure(self, x: Any, quality: int | None = None) -> tuple[bytes, float]:
        """(the .ncd file, the model's ideal bits for its payload: -log2 p, or the -ELBO for
        bits-back), from one encode."""
        self._metering = 0.0
        try:
            blob = self.encode(x, quality)
            return blob, self._metering
        finally:
            self._metering = None

    def check(self, x: Any, quality: int | None = None) -> None:
        """Encode and decode `x` part by part, comparing every distribution the decoder builds
        with the encoder's; a StepError names the step where they first differ."""
        arr = _as_array(self.check_input(x))
        if not self.lossless:
            quality = self.default_quality if quality is None else quality
        params = self.params(arr, quality)
        with self.running():
            for part in self.plan(arr.shape, params):
                values = [arr[r] for r in part]
                writer = self.writer(params, trace=True)
                self.part_step([v.shape for v in values], params).push(writer, values)
                expect = list(reversed(writer.trace)) if writer.lifo else list(writer.trace)
                reader = self.reader(writer.to_bytes(), params, trace=True)
                reader.expect = expect
                self.part_step([v.shape for v in values], params).pop(reader)


def _symbols_check(codec: LikelihoodCodec):
    """A lossy file carries a digest of every coded symbol (its decoder cannot check the
    output against the original); lossless files are checked against the original. (Symbols
    on a stack come out in another order than they went in: stack codecs are lossless.)"""
    return None if codec.lossless or codec.coder == "ans" else hashlib.blake2b(digest_size=16)


def _is_digest(value: Any, size: int) -> bool:
    """A digest as the encoder writes it: `size` bytes in lowercase hexadecimal."""
    return isinstance(value, str) and len(value) == 2 * size and all(c in "0123456789abcdef" for c in value)


def _progress(items, desc: str, total: int | None = None):
    """A progress bar over parts, on a terminal and only where there are several."""
    total = len(items) if total is None else total
    if total < 4:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"{desc} parts", unit="part", total=total, leave=False, disable=None)


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(x), dtype=np.uint8)
    return np.asarray(x)


def _shape(shape: tuple, region: Region) -> tuple:
    return tuple(len(range(*s.indices(n))) for s, n in zip(region, shape)) + tuple(shape[len(region):])


def check(step: Step, value: Any, coder: str = "range", seed_size: int = 1 << 12) -> Any:
    """Push `value` with `step`, pop it back, and compare every distribution the decoding
    built with the encoding's; a StepError names the step where they first differ. Returns
    the decoded value."""
    writer: Stream = Stack(seed_words(seed_size), trace=True) if coder == "ans" else Encoder(trace=True)
    step.push(writer, value)
    reader: Stream = Stack.from_bytes(writer.to_bytes(), seed_words(seed_size), trace=True) if coder == "ans" \
        else Decoder(writer.to_bytes(), trace=True)
    reader.expect = list(reversed(writer.trace)) if writer.lifo else list(writer.trace)
    return step.pop(reader)


__all__ = ["LikelihoodCodec", "Meter", "check", "state_digest"]
