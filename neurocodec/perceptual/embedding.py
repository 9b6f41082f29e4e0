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
    the aspect ratio is kept), encoded, and the last stage averaged over space, as in training.
    The dot product of two vectors is their cosine similarity: near photos (a crop, a
    recompressed copy) score high."""
    return embed(load_encoder(), as_array(image), read_config()["features_side"])


def embed(encoder: Encoder, a: np.ndarray, side: int, pool: str = "mean") -> np.ndarray:
    """`features` of HxWx3 uint8 `a` with a given encoder, scale and pooling ("mean", or "max":
    MAC, Tolias et al. 2016, compared in bench/retrieval.py)."""
    h, w = a.shape[:2]
    scale = side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    a = np.asarray(Image.fromarray(a).resize(size, Image.BICUBIC))
    with torch.inference_mode():
        last = encoder.taps(to_tensor(a))[-1][0]
        v = last.mean(dim=(1, 2)) if pool == "mean" else last.amax(dim=(1, 2))
    return torch.nn.functional.normalize(v, dim=0).numpy().astype(np.float32)
