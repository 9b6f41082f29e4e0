"""neurocodec: deep generative models as real codecs for images and text.

    import neurocodec
    blob = neurocodec.compress(image, codec="hyperprior", quality=50)   # .ncd bytes
    image = neurocodec.decompress(blob)
    with neurocodec.open("big.txt.ncd", "wb") as f:                     # text, block by block
        f.write(data)
"""

import os as _os

# Torch's OpenMP threads spin while they wait for each other; where another program holds a
# core, a two-thread vqlossless decode took 22 s instead of 2 (bench/threads.py on a loaded
# 2-core machine). Waiting passively changes no result; set before torch is first imported
# (neurocodec imports it lazily), and never over the user's own setting.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import pil_plugin  # noqa: F401  (registers the .ncd format with Pillow)
from .api import available_codecs, compress, decompress, load_codec, register
from .streaming import open  # noqa: A001  (like gzip.open)
from .errors import (
    CodecNotFound,
    FormatError,
    InputError,
    IntegrityError,
    LimitError,
    NeurocodecError,
    WeightsMismatch,
)


def features(image):
    """A 1-D float32 vector of unit length describing `image` (an HxWx3 uint8 array or a PIL
    image), from neurocodec's self-supervised encoder: for search, clustering and reuse
    (neurocodec.perceptual; torch is imported on the first call)."""
    from .perceptual import features as _features

    return _features(image)


__version__ = "0.1.0"
__all__ = [
    "CodecNotFound",
    "FormatError",
    "InputError",
    "IntegrityError",
    "LimitError",
    "NeurocodecError",
    "WeightsMismatch",
    "available_codecs",
    "compress",
    "decompress",
    "features",
    "load_codec",
    "open",
    "register",
]
