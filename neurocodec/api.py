"""The Python interface: compress, decompress, load_codec, available_codecs.

Importing it (and so `import neurocodec`) loads neither numpy nor torch: the codecs and their
dependencies are imported when first used, so that `neurocodec info` and other commands that
code nothing start at once.
"""

from __future__ import annotations

import io
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


AUTO = "auto"  # the codec name that picks per input (`compress`)


def compress(obj: Any, codec: str | None = None, quality: int | None = None, lossless: bool = False, name: str = "",
             effort: int = 0) -> bytes:
    """A complete .ncd file holding `obj` (an HxWx3 uint8 image, a PIL image, or bytes).

    `codec` names an installed codec (default: by the kind of `obj`). `lossless` without a
    codec, or `codec="auto"`, codes `obj` with every lossless codec of its kind that `effort`
    affords (`registry.auto_candidates`: 0 the fast ones, 1 all) and keeps the smallest file.
    `quality` (an int from 1 to 100) is for lossy codecs only. `effort` (0 = fastest; a
    codec's `efforts` lists its levels) buys a smaller or better file with encoder-side search,
    at more encode time, never a different decoder. `name` is the original's file name,
    stored in the file. Raises InputError for what the codec cannot code exactly as given,
    LimitError for an input over neurocodec.limits, CodecNotFound."""
    modality = modality_of(obj)
    if picks_per_input(codec, lossless):
        return _smallest(obj, modality, quality, name, effort)
    return choose_codec(modality, codec, lossless).encode(obj, quality=quality, name=name, effort=effort)


def picks_per_input(codec: Any, lossless: bool) -> bool:
    """Whether `compress` picks the codec per input (`auto`): named so, or lossless unnamed."""
    return codec == AUTO or (codec is None and lossless)


def _smallest(obj: Any, modality: str, quality: int | None, name: str, effort: int) -> bytes:
    """The smallest of the files that the lossless codecs `effort` affords write for `obj`,
    each at the highest of its own effort levels up to `effort`."""
    from . import registry

    if quality is not None:
        raise InputError("codec 'auto' is lossless and takes no quality")
    codecs = [load_codec(n) for n in registry.auto_candidates(modality, effort)]
    return min((c.encode(obj, name=name, effort=max(e for e in c.efforts if e <= effort)) for c in codecs), key=len)


def choose_codec(modality: str, codec: str | Codec | None = None, lossless: bool = False) -> Codec:
    """The codec `compress` uses for a whole input: `codec` (a name, or a codec object as it
    is), else the default one for `modality` (with `lossless` or "auto", the best lossless
    one: the one codec of a stream, whose blocks it codes alike); InputError for a lossy
    codec asked to be lossless."""
    from . import registry

    if codec == AUTO:
        codec, lossless = None, True
    if codec is not None and not isinstance(codec, str):
        chosen: Codec = codec
    else:
        chosen = load_codec(codec or registry.default_codec(modality, lossless))
    if lossless and not chosen.lossless:
        raise InputError(f"codec '{chosen.name}' is lossy; pick a lossless codec or drop --lossless")
    return chosen


def decompress(source: bytes | str | os.PathLike | BinaryIO) -> Any:
    """The image (HxWx3 uint8 array) or bytes held in a .ncd file, or the bytes held in a
    .ncd stream (what `neurocodec.open` and the command write for text over one block).

    `source` is the file's content (bytes, bytearray or memoryview), its path (str or
    pathlib.Path), or a binary file object open for reading, read from its current position
    to its end, where the .ncd file must end. Raises FormatError for anything that is not a
    whole, intact .ncd file, LimitError for one over neurocodec.limits, and OSError if the
    path cannot be read. (A stream is decoded whole into memory here; `neurocodec.open`
    reads one block at a time.)"""
    from . import streaming

    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(streaming.Reader(io.BytesIO(bytes(source))))
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return _decode(streaming.Reader(f))
    if hasattr(source, "read"):
        return _decode(streaming.Reader(source))
    raise TypeError(f"decompress takes bytes, a path or a binary file object, got {type(source).__name__}")


def _decode(reader) -> Any:
    return b"".join(reader.blocks()) if reader.stream else decode_container(reader.container)


def decode_container(box: container.Container) -> Any:
    """What a read .ncd file holds, decoded by the codec (or retired weights) that wrote it."""
    from . import registry

    return registry.codec_for(box.header).decode_container(box)
