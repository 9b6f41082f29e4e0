"""FID and KID between two sets of images, on 256-px patches, as HiFiC evaluates low-rate codecs.

The features come from the *evaluation* encoder (`load_eval_encoder`): a second SimCLR
network, trained apart from the one the perceptual codec learns from (another seed, other
widths) and never used as a loss, so a codec cannot score well by fooling its own judge.
FID and KID compare distributions, not pairs: they say whether reconstructions look like
photos, where PSNR says whether they look like their originals.

    feats_a = patch_features(originals)       # (n, d) float64
    feats_b = patch_features(decoded)
    fid(feats_a, feats_b), kid(feats_a, feats_b)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import NeurocodecError
from .encoder import Encoder, load_encoder
from .images import as_array, to_tensor

EVAL_WEIGHTS_DIR = Path(__file__).parent / "eval_weights"
PATCH = 256


def load_eval_encoder() -> Encoder:
    """The evaluation encoder shipped in neurocodec/perceptual/eval_weights."""
    if not (EVAL_WEIGHTS_DIR / "config.json").exists():
        raise NeurocodecError("the FID/KID evaluation encoder is not installed (neurocodec/perceptual/eval_weights): "
                              "train it with `python -m neurocodec.perceptual.train --seed 1 --widths 32,48,96,192,256 "
                              "--out runs/ssl-eval --export-to neurocodec/perceptual/eval_weights`")
    return load_encoder(EVAL_WEIGHTS_DIR)


def patches(image, size: int = PATCH) -> list[np.ndarray]:
    """The non-overlapping size x size patches of an image, and as many again shifted by half a
    patch each way (HiFiC's way of getting twice the patches from few images)."""
    a = as_array(image)
    out = []
    for shift in (0, size // 2):
        for r in range(shift, a.shape[0] - size + 1, size):
            for c in range(shift, a.shape[1] - size + 1, size):
                out.append(a[r : r + size, c : c + size])
    return out


def patch_features(images, encoder: Encoder | None = None, size: int = PATCH, batch: int = 16) -> np.ndarray:
    """(n, d) features of every patch of `images`: the encoder's last stage, averaged over space."""
    encoder = encoder or load_eval_encoder()
    tiles = [p for image in images for p in patches(image, size)]
    out = []
    with torch.inference_mode():
        for i in range(0, len(tiles), batch):
            x = torch.cat([to_tensor(t) for t in tiles[i : i + batch]])
            out.append(encoder(x).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.dim))


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a and b (n, d):
    |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two samples in each set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    root = root.real  # numerical noise can leave tiny imaginary parts
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 50, subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD^2 with the kernel
    (x.y / d + 1)^3, averaged over random subsets; (mean, standard deviation). Unlike FID it
    is unbiased for few samples."""
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least two samples in each set")
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))  # noqa: E731
        values.append(off(kxx) + off(kyy) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))
