"""Random training crops from folders of images, decoded once and kept in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


IMAGE_SUFFIXES = {".png", ".webp", ".jpg", ".jpeg"}


def load_images(folders: str | Path | list) -> list[torch.Tensor]:
    """Every PNG, WebP or JPEG in `folders` (one folder or image file, or several separated by
    commas or given as a list) as a uint8 tensor of shape (3, H, W)."""
    if isinstance(folders, (str, Path)):
        folders = [f for f in str(folders).split(",") if f]
    paths = []
    for folder in map(Path, folders):
        found = [folder] if folder.is_file() else sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise FileNotFoundError(f"no images in {folder}")
        paths += found
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1))
    return images


class RandomCrops:
    """Batches of random `size` x `size` crops with random flips, as float in [0, 1].

    Images narrower than `size` are reflect-padded. Sampling is weighted by image area, so
    every pixel of the set is about equally likely to be seen.
    """

    def __init__(self, images: list[torch.Tensor], size: int, device: str = "cpu", seed: int = 0):
        self.size = size
        self.images = [self._pad(im, size).to(device) for im in images]
        areas = torch.tensor([im.shape[1] * im.shape[2] for im in self.images], dtype=torch.float)
        self.weights = areas / areas.sum()
        self.gen = torch.Generator().manual_seed(seed)

    @staticmethod
    def _pad(im: torch.Tensor, size: int) -> torch.Tensor:
        """Reflected until `size` x `size` fits: in steps, since one reflection adds less than
        the side it reflects (a 158-px photo and 512-px crops)."""
        while im.shape[1] < size or im.shape[2] < size:
            _, h, w = im.shape
            ph, pw = min(max(0, size - h), h - 1), min(max(0, size - w), w - 1)
            if ph == pw == 0:  # a 1-px side cannot be reflected
                return torch.nn.functional.pad(im[None], (0, max(0, size - w), 0, max(0, size - h)), mode="replicate")[0]
            im = torch.nn.functional.pad(im[None].float(), (0, pw, 0, ph), mode="reflect")[0].to(torch.uint8)
        return im

    def batch(self, n: int) -> torch.Tensor:
        idx = torch.multinomial(self.weights, n, replacement=True, generator=self.gen)
        out = []
        for i in idx.tolist():
            im = self.images[i]
            _, h, w = im.shape
            top = int(torch.randint(0, h - self.size + 1, (1,), generator=self.gen))
            left = int(torch.randint(0, w - self.size + 1, (1,), generator=self.gen))
            crop = im[:, top : top + self.size, left : left + self.size]
            if torch.rand(1, generator=self.gen) < 0.5:
                crop = crop.flip(2)
            if torch.rand(1, generator=self.gen) < 0.5:
                crop = crop.flip(1)
            out.append(crop)
        return torch.stack(out).float() / 255.0
