"""The Python interface: compress, decompress, load_codec, available_codecs.

Importing it (and so `import neurocodec`) loads neither numpy nor torch: the codecs and their
dependencies are imported when first used, so that `neurocodec info` and other commands that
code nothing start at once.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO

from . import container
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .codec import Codec


def load_codec(name: str) -> Codec:
    """The codec `name`: one given to `register`, else the installed one, its weights verified
    (loaded once per process)."""
    from . import registry

    return registry.load_codec(name)


def register(codec: Codec) -> Codec:
    """Make a codec object (e.g. a `compose.LikelihoodCodec` around your own model) known by its
    name in this process, so `decompress` and `load_codec` find it."""
    from . import registry

    return registry.register(codec)


def available_codecs() -> list[str]:
    """Names of the installed codecs."""
    from . import registry

    return registry.available_codecs()


def modality_of(obj: Any) -> str:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "text"
    try:
        from PIL import Image

        if isinstance(obj, Image.Image):
            return "image"
    except ImportError:  # pragma: no cover
        pass
    import numpy as np

    if isinstance(obj, np.ndarray):
        return "image"
    raise InputError(f"cannot compress a {type(obj).__name__}: give an image (array or PIL) or bytes")


def compress(obj: Any, codec: str | None = None, quality: int | None = None, lossless: bool = False, name: str = "") -> bytes:
    """A complete .ncd file holding `obj` (an HxWx3 uint8 image, a PIL image, or bytes).

    `codec` names an installed codec (default: by the kind of `obj`; with `lossless`, the best
    lossless one). `quality` (an int from 1 to 100) is for lossy codecs only. `name` is the
    original's file name, stored in the file. Raises InputError for what the codec cannot code
    exactly as given, LimitError for an input over neurocodec.limits, CodecNotFound."""
    from . import registry

    chosen: Codec = load_codec(codec or registry.default_codec(modality_of(obj), lossless))
    if lossless and not chosen.lossless:
        raise InputError(f"codec '{chosen.name}' is lossy; pick a lossless codec or drop --lossless")
    return chosen.encode(obj, quality=quality, name=name)


def decompress(source: bytes | str | os.PathLike | BinaryIO) -> Any:
    """The image (HxWx3 uint8 array) or bytes held in a .ncd file.

    `source` is the file's content (bytes, bytearray or memoryview), its path (str or
    pathlib.Path), or a binary file object open for reading, read from its current position
    to its end, where the .ncd file must end. Raises FormatError for anything that is not a
    whole, intact .ncd file, LimitError for one over neurocodec.limits, and OSError if the
    path cannot be read."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        box = container.unpack(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            box = container.read(f)
    elif hasattr(source, "read"):
        box = container.read(source)
    else:
        raise TypeError(f"decompress takes bytes, a path or a binary file object, got {type(source).__name__}")
    return decode_container(box)


def decode_container(box: container.Container) -> Any:
    """What a read .ncd file holds, decoded by the codec (or retired weights) that wrote it."""
    from . import registry

    return registry.codec_for(box.header).decode_container(box)
