"""Training data of the encoder: which photos it may see, and the two augmented views of each.

A deterministic tenth of images/extra is held out of training (`is_held_out`: the first byte of
the SHA-1 of the file name is below 26, i.e. about 10 %), so that retrieval can be measured on
more photos than Kodak's 24. Kodak is never trained on.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".webp", ".jpg", ".jpeg"}
HELD_OUT_RULE = "sha1(file name)[0] < 26 (about 10 %) of images/extra"


def is_held_out(path: str | Path) -> bool:
    """Whether a photo of images/extra is kept out of training (see HELD_OUT_RULE)."""
    return hashlib.sha1(Path(path).name.encode()).digest()[0] < 26


def image_paths(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def training_paths(train: str | Path, extra: str | Path) -> list[Path]:
    """Every photo of `train`, and those of `extra` that are not held out."""
    return image_paths(train) + [p for p in image_paths(extra) if not is_held_out(p)]


def held_out_paths(extra: str | Path) -> list[Path]:
    return [p for p in image_paths(extra) if is_held_out(p)]


def load_small(path: str | Path, side: int = 256) -> Image.Image:
    """The photo as RGB with its shorter side at most `side` pixels."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = side / min(im.size)
        if scale < 1:
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
        return im.copy()


class TwoViews:
    """SimCLR batches: two strongly augmented `size` x `size` views of each of `n` photos.

    Per view: random resized crop (8-100 % of the area, aspect 3:4-4:3), flip, colour jitter,
    grey, Gaussian blur, JPEG re-encoding (quality 10-90) and Gaussian noise; the strengths cover
    what retrieval must survive (a 50-70 % crop, a brightness change, JPEG quality 30)."""

    def __init__(self, images: list[Image.Image], size: int = 64, seed: int = 0):
        from torchvision.transforms import v2

        self.images, self.size = images, size
        self.rng = random.Random(seed)
        torch.manual_seed(seed)
        self.crop = v2.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias=True)
        self.colour = v2.Compose([
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(0.2),
            v2.RandomApply([v2.GaussianBlur(9, (0.1, 2.0))], p=0.4),
        ])

    def view(self, im: Image.Image) -> torch.Tensor:
        from torchvision.io import decode_jpeg, encode_jpeg

        x = torch.from_numpy(np.array(self.crop(im)).transpose(2, 0, 1).copy())
        x = self.colour(x)
        if self.rng.random() < 0.4:
            x = decode_jpeg(encode_jpeg(x, quality=self.rng.randint(10, 90)))
        x = x.float()
        if self.rng.random() < 0.3:
            x = (x + torch.randn_like(x) * self.rng.uniform(1, 12)).clamp(0, 255)
        return x

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        picks = [self.rng.randrange(len(self.images)) for _ in range(n)]
        a = torch.stack([self.view(self.images[i]) for i in picks])
        b = torch.stack([self.view(self.images[i]) for i in picks])
        return a, b
