"""A real photo that ships with neurocodec, for examples and quick checks (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def photo() -> np.ndarray:
    """A 256x192 crop of Kodak's kodim23 (parrots), HxWx3 uint8."""
    from PIL import Image

    with Image.open(HERE / "kodim23_crop.png") as im:
        return np.asarray(im.convert("RGB")).copy()
