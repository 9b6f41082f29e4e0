"""A perceptual distance from the encoder's features, as LPIPS (Zhang et al. 2018) builds it.

For each stage of the encoder: unit-normalise every pixel's feature vector over the channels,
take the squared difference between the two images, sum it over the channels and average it
over space; then average the stages. The stage weights are uniform (1/5 each): LPIPS fits them
on human judgements, which do not exist here, and fitting them on synthetic distortion ranks
would only teach them the very orderings the benchmark (bench/perceptual_ordering.py) checks.
"""

from __future__ import annotations

import torch

from .encoder import Encoder, load_encoder
from .images import as_array, to_tensor


def feature_distance(encoder: Encoder, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) distances between pixel batches `x` and `y` (B, 3, H, W, floats 0..255);
    differentiable, so it can serve as a training loss."""
    total = 0.0
    taps_x, taps_y = encoder.taps(x), encoder.taps(y)
    for fx, fy in zip(taps_x, taps_y):
        fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + (fx - fy).pow(2).sum(1).mean(dim=(1, 2))
    return total / len(taps_x)


def distance(a, b) -> float:
    """The perceptual distance between two images of the same shape (HxWx3 uint8 arrays or PIL
    images): 0 for identical images, larger for more visible differences; at most 2, as the
    features are non-negative (after a ReLU) unit vectors."""
    a, b = as_array(a), as_array(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    with torch.inference_mode():
        return float(feature_distance(load_encoder(), to_tensor(a), to_tensor(b))[0])
