"""Distortion and rate measures for RGB uint8 images, and the Bjøntegaard delta rate."""

from __future__ import annotations

import math

import numpy as np

# pytorch_msssim's 5-scale MS-SSIM with its 11-px window needs a smaller side above (11 - 1) * 2**4
MS_SSIM_MIN_SIDE = 161


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(a, b) -> float:
    """PSNR in dB over all pixels and channels with a peak of 255; inf for identical images."""
    a, b = _pair(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ms_ssim(a, b) -> float:
    """MS-SSIM (data range 255) on the CPU; nan for images too small for its five scales."""
    a, b = _pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def tensor(x):
        return torch.from_numpy(np.asarray(x, np.float32)).permute(2, 0, 1)[None]

    # one thread: MS-SSIM is not timed, and a thread pool on a loaded machine can be 50x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return float(_ms_ssim(tensor(a), tensor(b), data_range=255, size_average=True))
    finally:
        torch.set_num_threads(threads)


def perceptual(a, b) -> float:
    """neurocodec's LPIPS-style distance from its self-supervised encoder (0 for identical
    images, larger is worse; neurocodec.perceptual.similarity)."""
    from ..perceptual import distance

    return distance(*_pair(a, b))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), which spreads out the values near 1."""
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


def bpp(nbytes: int, img) -> float:
    """Bits per pixel of a file of `nbytes` for the HxW(x3) image `img`."""
    h, w = np.shape(img)[:2]
    return 8 * nbytes / (h * w)


def bd_rate(rate_a, psnr_a, rate_b, psnr_b) -> float:
    """Bjøntegaard delta rate of curve B against anchor A, in percent (negative: B saves bits).

    VCEG-M33: fit log-rate as a cubic polynomial of PSNR for each curve, integrate both over the
    PSNR interval the curves share, and turn the mean log-rate difference into a rate ratio.
    Curves with fewer than 4 points get a polynomial of lower degree; nan if they do not overlap.
    """
    fits, ranges = [], []
    for rate, quality in ((rate_a, psnr_a), (rate_b, psnr_b)):
        rate, quality = np.asarray(rate, np.float64), np.asarray(quality, np.float64)
        keep = np.isfinite(rate) & np.isfinite(quality) & (rate > 0)
        rate, quality = rate[keep], quality[keep]
        if len(rate) < 2:
            return math.nan
        fits.append(np.polyint(np.polyfit(quality, np.log(rate), min(3, len(rate) - 1))))
        ranges.append((quality.min(), quality.max()))
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if hi <= lo:
        return math.nan
    mean_a, mean_b = ((np.polyval(f, hi) - np.polyval(f, lo)) / (hi - lo) for f in fits)
    return float((math.exp(mean_b - mean_a) - 1) * 100)


def bd_rate_points(anchor, test) -> float:
    """`bd_rate` of two curves given as (rate, PSNR) points."""
    return bd_rate([r for r, _ in anchor], [p for _, p in anchor], [r for r, _ in test], [p for _, p in test])
