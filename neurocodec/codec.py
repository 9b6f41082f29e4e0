"""What every codec is: a name, a modality, lossless or not, and encode/decode to .ncd bytes.

A learned codec implements `encode_chunks` and `decode_chunks`; this base class wraps them in
the .ncd container (neurocodec.container), checks the weights digest and that an image file
says HxWx3 and, for lossless codecs, verifies the decoded output against the content digest
the encoder stored.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import numpy as np

from . import container
from .errors import FormatError, InputError, IntegrityError, WeightsMismatch


class Codec:
    name: str
    modality: str  # "image" or "text"
    lossless: bool
    weights_digest: bytes = b"\0" * 32
    default_quality: int | None = None
    efforts: tuple[int, ...] = (0,)  # the encoder-side search levels this codec offers
    bench_qualities: tuple[int, ...] = ()

    def __init__(self, config: dict, weights_digest: bytes):
        """`config` is the codec folder's config.json; `weights_digest` the SHA-256 of its
        weights, which every file it writes records."""
        self.name = config["name"]
        self.config = config
        self.weights_digest = weights_digest

    # --- what a codec implements -------------------------------------------------------
    def encode_chunks(self, x: Any, quality: int | None) -> tuple[dict, list[bytes]]:
        """Code `x`; return the parameters the decoder needs and the payload chunks."""
        raise NotImplementedError

    def decode_chunks(self, header: container.Header, chunks: list[bytes]) -> Any:
        raise NotImplementedError

    # --- the common part ---------------------------------------------------------------
    def encode(self, x: Any, quality: int | None = None, name: str = "", effort: int = 0) -> bytes:
        """A .ncd file of `x`. `effort` (0 = fastest) buys a smaller or better file with
        encoder-side search where the codec has it (`efforts` lists its levels); it never
        changes what the decoder does."""
        from . import limits
        from .errors import NeurocodecError

        # everything that can be refused is refused before any conversion, copy or coding
        if self.lossless:
            if quality is not None:
                raise InputError(f"codec '{self.name}' is lossless and takes no quality, got {quality!r}")
        else:
            quality = self.default_quality if quality is None else quality
            if isinstance(quality, (bool, np.bool_)) or not (isinstance(quality, (int, np.integer)) and 1 <= quality <= 100):
                raise InputError(f"quality must be an integer from 1 to 100, got {quality!r}")
            quality = int(quality)
        if isinstance(effort, (bool, np.bool_)) or not isinstance(effort, (int, np.integer)) or effort not in self.efforts:
            raise InputError(f"codec '{self.name}' takes effort {', '.join(map(str, self.efforts))}, got {effort!r}")
        try:
            container._check_name(name)
        except ValueError as e:
            raise InputError(str(e)) from None
        size = limits.input_shape(x, self.modality)
        if size is not None:
            limits.check_size(self.modality, size, f"the input {self.modality}")
        x = self.check_input(x)
        params, chunks = self.encode_chunks(x, quality, int(effort)) if effort else self.encode_chunks(x, quality)
        header = container.Header(
            codec=self.name,
            weights_digest=self.weights_digest,
            modality=self.modality,
            lossless=self.lossless,
            shape=tuple(int(s) for s in np.shape(x)) if self.modality == "image" else (len(x),),
            params=params,
            name=name,
        )
        if not limits.payload_can_hold(self.modality, header.shape, sum(map(len, chunks))):
            raise NeurocodecError(  # never write a file that readers would refuse as corrupted
                f"codec '{self.name}' coded {header.shape} in fewer bytes than neurocodec files may; please report this"
            )
        digest = container.content_digest(_as_bytes(x)) if self.lossless else None
        return container.pack(header, chunks, digest)

    def decode(self, blob: bytes | container.Container) -> Any:
        box = blob if isinstance(blob, container.Container) else container.unpack(blob)
        return self.decode_container(box)

    def decode_container(self, box: container.Container) -> Any:
        from . import limits

        h = box.header
        if h.modality != self.modality or h.lossless != self.lossless:
            said = f"{h.modality}, {'lossless' if h.lossless else 'lossy'}"
            kind = f"{self.modality}, {'lossless' if self.lossless else 'lossy'}"
            raise FormatError(f"corrupted .ncd file: the header says {said}, but codec '{self.name}' is {kind}")
        if h.weights_digest != self.weights_digest:
            raise WeightsMismatch(
                f"file was encoded with other weights of codec '{h.codec}' "
                f"({h.weights_digest.hex()[:12]}, installed {self.weights_digest.hex()[:12]})"
            )
        if self.modality == "image" and (len(h.shape) != 3 or h.shape[2] != 3 or min(h.shape) < 1):
            raise FormatError(f"corrupted .ncd file: codec '{h.codec}' holds HxWx3 images, the header says {h.shape}")
        if self.modality == "text" and len(h.shape) != 1:
            raise FormatError(f"corrupted .ncd file: codec '{h.codec}' holds byte strings, the header says shape {h.shape}")
        # sizes from the header alone, before any codec code runs or allocates
        limits.check_payload(h.modality, h.shape, sum(map(len, box.chunks)))
        limits.check_size(h.modality, h.shape, f"the {h.modality} in this file")
        out = self.decode_chunks(h, box.chunks)
        if box.content_digest is not None and container.content_digest(_as_bytes(out)) != box.content_digest:
            raise IntegrityError(f"decoded output of codec '{h.codec}' does not match the original's checksum")
        return out

    def check_input(self, x: Any) -> Any:
        if self.modality == "image":
            if isinstance(x, (bytes, bytearray, memoryview, str)):
                raise InputError(
                    f"codec '{self.name}' codes images, and the input is {type(x).__name__}, not an image "
                    "(give an HxWx3 uint8 array or a Pillow image)"
                )
            return as_rgb_image(x, lossless=self.lossless)
        if not isinstance(x, (bytes, bytearray, memoryview)):
            raise InputError(f"codec '{self.name}' codes byte strings, got {type(x).__name__}")
        return bytes(x)

    def __repr__(self) -> str:
        kind = "lossless" if self.lossless else "lossy"
        return f"<{type(self).__name__} '{self.name}' ({self.modality}, {kind})>"


def as_rgb_image(x: Any, lossless: bool = False) -> np.ndarray:
    """An HxWx3 uint8 array from an array or a Pillow image, never silently changed when
    `lossless`.

    Images with an alpha channel and 16-bit grey or float images are always refused. For lossy
    coding, grey, palette, bilevel, CMYK, YCbCr and other 8-bit modes are converted to RGB, a
    2-D array is taken as grey, and 16-bit RGB keeps its top 8 bits. For lossless coding only
    8-bit RGB is taken, since anything else would not come back as it was given: the message
    says how to convert it if that is what is wanted. A Pillow image's bit depth is read from
    its file before it is loaded (Pillow opens 16-bit RGB PNGs as mode RGB), or from
    `info["neurocodec_sample_bits"]` of a loaded copy.
    """
    from PIL import Image

    from .inputs import sample_bits

    if isinstance(x, Image.Image):
        mode = x.mode
        if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in x.info):
            raise InputError(f"image has an alpha channel (mode {mode}); flatten it to RGB first")
        if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            raise InputError(f"{mode} images (16-bit or float) are not supported; convert to 8-bit RGB")
        if lossless:
            if sample_bits(x) > 8:
                raise InputError(
                    f"image has {sample_bits(x)} bits per sample; lossless codecs code 8-bit RGB only and would "
                    "drop the low bits. Use a lossy codec, or convert it to 8 bits yourself first"
                )
            if mode != "RGB":
                raise InputError(
                    f"image is mode {mode}, not RGB; lossless codecs code 8-bit RGB only, and it would not come "
                    "back as it was. Convert it first (im.convert('RGB')) if RGB is what you want to keep"
                )
            if "transparency" in x.info:
                raise InputError("image has a transparent colour (tRNS); flatten it to RGB first")
        try:
            x = np.asarray(x.convert("RGB"))
        except (ValueError, OSError) as e:
            raise InputError(f"cannot convert a mode {mode} image to RGB ({e})") from None
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise InputError(f"image must be uint8, got {x.dtype}")
    if x.ndim == 2:
        if lossless:
            raise InputError(
                "image is a 2-D (grey) array; lossless codecs code HxWx3 RGB only, and it would come back "
                "as RGB. Stack it to HxWx3 first (np.stack([a] * 3, axis=-1)) if that is what you want"
            )
        x = np.repeat(x[:, :, None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3:
        raise InputError(f"image must be HxWx3 RGB, got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError("image is empty")
    return np.ascontiguousarray(x)


def _as_bytes(x: Any) -> bytes:
    return x.tobytes() if isinstance(x, np.ndarray) else bytes(x)


def tile_grid(height: int, width: int, tile_height: int, tile_width: int | None = None) -> list[tuple[int, int, int, int]]:
    """(row, column, height, width) of each tile of an image, row by row."""
    tile_width = tile_height if tile_width is None else tile_width
    return [
        (r, c, min(tile_height, height - r), min(tile_width, width - c))
        for r in range(0, height, tile_height)
        for c in range(0, width, tile_width)
    ]


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread, then restore the setting. The lossless codecs run
    many small steps, where a second thread gains little and, on a busy machine, torch's
    spinning threads cost 3-6x (measured with one core busy: a Kodak decode of `idf` 12.7 s
    against 2.2 s, a 6 kB text 10.1 s against 3.1 s). Files never depend on it: exact
    arithmetic gives the same bits for any thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FastestThreads:
    """For a loop of many small torch steps: steps on all of torch's threads or on one, whichever
    steps faster now. A text group steps about 1.4x faster on two idle cores than on one; with
    the other core busy, torch's second thread made each step up to 30x slower (Canoeing decoded
    at 0.5 kB/s against 14 on one thread where torch was imported before neurocodec, with
    OpenMP's long default spin; 14.9 against 17.5 with neurocodec's short one). Exact
    arithmetic gives the same bits for any thread count, so the choice never shows in a file.
    Use as `with FastestThreads() as threads:`, each step inside `with threads.step():`;
    `most=1` keeps one thread throughout.

    It starts on one thread. A trial times a block of steps on one thread, one on all, and one
    on one again (the first step of a block warms up: caches follow the thread count), at the
    steps in TRIALS and every EVERY steps after the last: a coder's first steps are slow on any
    count while its tables fill, so the early choices are retried as the machine's load may
    change. A trial stops at the first step on all threads that is over twice as slow; all
    threads are kept unless they were over 10 % slower (an idle core clocks up as it starts)."""

    TRIALS = (64, 512, 1536)
    EVERY = 2048
    BLOCK = 8

    def __init__(self, most: int | None = None):
        import torch

        self._torch, self.before = torch, torch.get_num_threads()
        self.many = self.before if most is None else min(most, self.before)
        self.steps, self.best, self.times, self.start = 0, 1, {}, None

    def __enter__(self) -> "FastestThreads":
        return self

    def __exit__(self, *exc) -> None:
        self._torch.set_num_threads(self.before)

    def _trial(self) -> tuple[int, int] | None:
        """(thread count, step within its block) if this step is part of a trial."""
        t, last = self.steps, self.TRIALS[-1]
        if self.many > 1 and (t in self.TRIALS or (t > last and (t - last) % self.EVERY == 0)):
            self.start = t  # a trial begins
        k = t - self.start if self.start is not None else -1
        if not 0 <= k < 3 * self.BLOCK:
            self.start = None
            return None
        return (self.many if k // self.BLOCK == 1 else 1), k % self.BLOCK

    @contextlib.contextmanager
    def step(self):
        trial = self._trial()
        n = trial[0] if trial else self.best
        self._torch.set_num_threads(n)
        begin = time.perf_counter()
        yield
        seconds = time.perf_counter() - begin
        self.steps += 1
        if not trial:
            return
        times = self.times.setdefault(n, [])
        if trial[1]:  # not a block's first step
            times.append(seconds)
        slow = n > 1 and seconds > 2 * statistics.median(self.times[1]) * (1 if trial[1] else 2)
        if slow or self._trial() is None:  # the trial is over
            many = self.times.get(self.many)
            # all threads unless clearly slower: an idle core's first milliseconds run at a low clock
            self.best = self.many if many and not slow and statistics.median(many) < 1.1 * statistics.median(self.times[1]) else 1
            self.times, self.start = {}, None
