from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"


def load(name: str) -> np.ndarray:
    with Image.open(DATA / name) as im:
        return np.asarray(im.convert("RGB")).copy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A 256x192 crop of Kodak's kodim23 (real photo)."""
    return load("kodim23_crop.png")


@pytest.fixture(scope="session")
def photo_odd() -> np.ndarray:
    """A 200x152 crop of kodim05: neither side a multiple of 64."""
    return load("kodim05_crop.png")


@pytest.fixture(scope="session")
def hyperprior():
    import neurocodec

    return neurocodec.load_codec("hyperprior")
