"""neurocodec: deep generative models as real codecs for images and text.

    import neurocodec
    blob = neurocodec.compress(image, codec="hyperprior", quality=50)   # .ncd bytes
    image = neurocodec.decompress(blob)
    with neurocodec.open("big.txt.ncd", "wb") as f:                     # text, block by block
        f.write(data)
"""

import os as _os

# Torch's OpenMP threads spin while they wait for each other (GNU OpenMP: 300,000 turns by
# default); where another program holds a core, a two-thread vqlossless decode took 22 s
# instead of 1.3. A short spin, then sleep, keeps the idle speed; sleeping at once
# (OMP_WAIT_POLICY=PASSIVE) cost 0.3 s idle (bench/threads.py). Kodim07 decoded on two
# threads with the other core busy / idle, at 10,000 turns and at 1,000: vqlossless 3.13 /
# 0.91 s and 1.77 / 0.97 s, context 0.71 / 0.36 s and 0.61 / 0.35 s; Canoeing as text, 7.1 /
# 22.2 kB/s and 14.2 / 22.0 kB/s (300,000: 1.0 / 20.5). It changes no result; set before
# torch is first imported (neurocodec imports it lazily), and only where the user set neither.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "1000"

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
