"""Facts about inputs that the coding layer needs and Pillow does not keep."""

from __future__ import annotations

from typing import Any

SAMPLE_BITS_KEY = "neurocodec_sample_bits"  # in a loaded image's info: the bit depth of its file


def sample_bits(im: Any) -> int:
    """Bits per sample of the file a Pillow image comes from: 8 unless the image says otherwise.

    Pillow opens a 16-bit RGB PNG as mode RGB, keeping the top 8 bits; only the not yet loaded
    image tells (by its raw mode, e.g. "RGB;16B"). Code that loads an image and then hands it
    on (the command line) records the depth under info[SAMPLE_BITS_KEY]."""
    bits = im.info.get(SAMPLE_BITS_KEY)
    if isinstance(bits, int):
        return bits
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str) and (";16" in raw or ";32" in raw):
            return 16 if ";16" in raw else 32
    return 8
