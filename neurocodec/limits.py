"""Size limits, decided from a file's header (or an input's shape) before any codec code runs.

Like Pillow's `Image.MAX_IMAGE_PIXELS`, they keep a small crafted or damaged file from making
neurocodec allocate gigabytes or run for hours. Change them as module attributes
(`neurocodec.limits.MAX_IMAGE_PIXELS = 2**30`; None turns a limit off) or, before neurocodec
is imported, with the environment variables of the same names prefixed by NEUROCODEC_
(a positive integer, or "none"):

=====================  =================================  =======================================
limit                  default                            what it bounds
=====================  =================================  =======================================
MAX_IMAGE_PIXELS       2**28 (268,435,456: 16384x16384)   pixels of an image encoded or decoded
MAX_TEXT_BYTES         2**32 (4 GiB)                      bytes of a text encoded or decoded
=====================  =================================  =======================================

A file bigger than a limit raises LimitError, which names the limit and how to raise it.

Independently of these, a file must be able to hold what its header claims: at most
SAMPLES_PER_PAYLOAD_BYTE pixels (images) or bytes (text) per byte of payload, plus that many
once (see `payload_can_hold`). A file claiming more is corrupted (FormatError), whatever the
limits say; this bound is part of the format, not a setting.
"""

from __future__ import annotations

import math
import os
import warnings

from .errors import FormatError, LimitError

DEFAULT_MAX_IMAGE_PIXELS = 1 << 28
DEFAULT_MAX_TEXT_BYTES = 1 << 32

# Why 2**20 pixels or bytes per payload byte is generous, yet refuses the bombs of issue 16:
# * Every shipped codec entropy-codes with constriction at 24-bit precision, whose leaky
#   quantization gives every one of the 256 values of a byte or a sub-pixel at least 2**-24
#   of probability, so one such symbol costs at least -log2(1 - 255 * 2**-24) = 2.2e-5 bits:
#   at most 2**18.5 of them per payload byte. A pixel is 3 sub-pixels.
# * Measured, the most compressible real inputs come nowhere near: a flat grey 256x256 image
#   at hyperprior quality 1 is 496 pixels per payload byte, the best of every shipped codec
#   (pixelcnn 15, bitsback 4, idf 2 on flat images); 20 kB of zero bytes with the text codec
#   274 bytes per payload byte. 2**20 leaves a margin of over 2,000.
# * The extra 2**20 (one "free" payload byte) covers tiny inputs and empty payloads, which
#   range coders end with no data at all (an empty text has no chunks).
# A 300-byte file can thus claim at most about 300 M pixels, and a file with empty chunks at
# most 1 M: the 4096x4096 image that 16 empty hyperprior chunks decoded to is refused.
# Latent-variable codecs (hyperprior, bitsback, idf) do not code pixels one by one; the bound
# stays generous for them by the measurements above, not by the first argument.
SAMPLES_PER_PAYLOAD_BYTE = 1 << 20

_ENV = "NEUROCODEC_"


def _from_env(name: str, default: int) -> int | None:
    text = os.environ.get(_ENV + name)
    if text is None or not text.strip():
        return default
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        warnings.warn(f"${_ENV}{name}={text!r} is not a positive integer or 'none'; using {default}", stacklevel=2)
        return default
    return value


MAX_IMAGE_PIXELS: int | None = _from_env("MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)
MAX_TEXT_BYTES: int | None = _from_env("MAX_TEXT_BYTES", DEFAULT_MAX_TEXT_BYTES)


def samples(modality: str, shape: tuple[int, ...]) -> int:
    """Pixels of an image of `shape` (HxWxC: H*W) or bytes of a text (the product of `shape`)."""
    dims = shape[:-1] if modality == "image" and len(shape) > 2 else shape
    return math.prod(int(d) for d in dims)


def check_size(modality: str, shape: tuple[int, ...], what: str = "") -> None:
    """Raise LimitError if an image or text of `shape` is over MAX_IMAGE_PIXELS or MAX_TEXT_BYTES.

    `what` names the thing for the message, e.g. "the input image"; by default "the image"/"the text"."""
    n = samples(modality, shape)
    if modality == "image":
        name, limit, unit = "MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS, "pixels"
        size = "x".join(str(int(d)) for d in shape[:2]) + f" ({n:,} pixels)"
    else:
        name, limit, unit = "MAX_TEXT_BYTES", MAX_TEXT_BYTES, "bytes"
        size = f"{n:,} bytes"
    if limit is not None and n > limit:
        what = what or f"the {modality}"
        raise LimitError(
            f"{what} is {size}, over the limit of {limit:,} {unit}; if you trust it, raise "
            f"neurocodec.limits.{name} or ${_ENV}{name}"
        )


def payload_can_hold(modality: str, shape: tuple[int, ...], payload_bytes: int) -> bool:
    """Whether `payload_bytes` of coded data can hold an image or text of `shape` (see above)."""
    return samples(modality, shape) <= SAMPLES_PER_PAYLOAD_BYTE * (payload_bytes + 1)


def check_payload(modality: str, shape: tuple[int, ...], payload_bytes: int) -> None:
    """Raise FormatError if a header's shape is more than `payload_bytes` can hold."""
    if not payload_can_hold(modality, shape, payload_bytes):
        unit = "pixels" if modality == "image" else "bytes"
        raise FormatError(
            f"corrupted .ncd file: the header claims {samples(modality, shape):,} {unit}, more than "
            f"{payload_bytes:,} bytes of coded data can hold"
        )


def input_shape(x, modality: str) -> tuple[int, ...] | None:
    """The shape an input will be coded as (HxWx3, or (length,)), found without converting or
    copying it; None when it cannot be told yet (the codec then refuses the input or converts it)."""
    if modality == "text":
        return (len(x),) if isinstance(x, (bytes, bytearray)) else None
    size = getattr(x, "size", None)  # a Pillow image: (width, height)
    if hasattr(x, "getbands") and isinstance(size, tuple) and len(size) == 2:
        return (int(size[1]), int(size[0]), 3)
    shape = getattr(x, "shape", None)  # an array
    if isinstance(shape, tuple) and len(shape) >= 2:
        return (int(shape[0]), int(shape[1]), 3)
    return None


# --- a codec's header parameters -------------------------------------------------------------


def header_int(params: dict, key: str, lo: int, hi: int, codec: str) -> int:
    """`params[key]`, which must be a JSON integer in [lo, hi]: not a string, a float or a
    boolean ("7", 7.0 and true are what a crafted or damaged header says, never our encoders).
    The bounds are each family's, decided from what its encoders write, with a margin, so that
    one part of a file never asks for more memory or time than a real file could."""
    value = params.get(key) if isinstance(params, dict) else None
    if type(value) is not int or not lo <= value <= hi:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise FormatError(f"corrupted .ncd file: '{codec}' parameter {key} is {shown}, not an integer in [{lo}, {hi}]")
    return value


def check_part_size(codec: str, modality: str, shapes: list[tuple], chunk_bytes: int, per_byte: int | None) -> None:
    """Raise FormatError if one part of a file, the arrays of `shapes` from a chunk of
    `chunk_bytes` bytes, holds more than `per_byte` samples per byte of the chunk, plus that
    many once: the part-by-part bound of the work a decoder does (see
    LikelihoodCodec.samples_per_chunk_byte); None: no bound."""
    if per_byte is None:
        return
    n = sum(samples(modality, s) for s in shapes)
    if n > per_byte * (chunk_bytes + 1):
        unit = "pixels" if modality == "image" else "bytes"
        raise FormatError(
            f"corrupted .ncd file: a part of {n:,} {unit} is more than its {chunk_bytes:,} bytes of "
            f"'{codec}' data can hold"
        )
