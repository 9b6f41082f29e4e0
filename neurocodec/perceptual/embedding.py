"""`neurocodec.features(image)`: the encoder's representation of a photo, for search and reuse."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .encoder import Encoder, load_encoder, read_config
from .images import as_array, to_tensor


def features(image) -> np.ndarray:
    """A 1-D float32 vector of unit length for `image` (HxWx3 uint8 array or PIL image).

    The photo is resized so its shorter side is 96 px (the scale the encoder was trained at;
    the aspect ratio is kept), encoded, and the last stage averaged over space. The dot product
    of two vectors is their cosine similarity: near photos (a crop, a recompressed copy) score
    high."""
    return embed(load_encoder(), as_array(image), read_config()["features_side"])


def embed(encoder: Encoder, a: np.ndarray, side: int) -> np.ndarray:
    """`features` with a given encoder and scale (HxWx3 uint8 `a`)."""
    h, w = a.shape[:2]
    scale = side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    a = np.asarray(Image.fromarray(a).resize(size, Image.BICUBIC))
    with torch.inference_mode():
        v = encoder(to_tensor(a))[0]
    return torch.nn.functional.normalize(v, dim=0).numpy().astype(np.float32)
