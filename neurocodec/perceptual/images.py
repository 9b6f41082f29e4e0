"""Turning what users pass (HxWx3 uint8 arrays, PIL images) into the encoder's input."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError


def as_array(image) -> np.ndarray:
    """`image` as an HxWx3 uint8 array; InputError for anything else."""
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            image = image.convert("RGB")
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
        raise InputError(f"expected an HxWx3 uint8 image or a PIL image, got {type(image).__name__} "
                         f"of shape {getattr(a, 'shape', '?')} and type {a.dtype}")
    return a


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) float32 0..255."""
    return torch.from_numpy(a.transpose(2, 0, 1)[None].astype(np.float32))
