"""The Python interface: compress, decompress, load_codec, available_codecs."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import container, registry
from .codec import Codec
from .errors import InputError

load_codec = registry.load_codec
available_codecs = registry.available_codecs


def modality_of(obj: Any) -> str:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "text"
    try:
        from PIL import Image

        if isinstance(obj, Image.Image):
            return "image"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, np.ndarray):
        return "image"
    raise InputError(f"cannot compress a {type(obj).__name__}: give an image (array or PIL) or bytes")


def compress(obj: Any, codec: str | None = None, quality: int | None = None, lossless: bool = False, name: str = "") -> bytes:
    """A complete .ncd file holding `obj` (an HxWx3 uint8 image, a PIL image, or bytes)."""
    chosen: Codec = load_codec(codec or registry.default_codec(modality_of(obj), lossless))
    if lossless and not chosen.lossless:
        raise InputError(f"codec '{chosen.name}' is lossy; pick a lossless codec or drop --lossless")
    return chosen.encode(obj, quality=quality, name=name)


def decompress(blob: bytes) -> Any:
    """The image (HxWx3 uint8 array) or bytes held in a .ncd file."""
    box = container.unpack(blob)
    return load_codec(box.header.codec).decode_container(box)
