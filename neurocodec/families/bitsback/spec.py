"""Training of the `bitsback` VAE: the negative ELBO in bits per sub-pixel.

The loss is what the codec pays (up to the latents' discretization and the initial bits):
-log2 p(x|z1) under the coded discretized Laplace, plus the analytic KL terms of both levels.
"""

from __future__ import annotations

from ...train.spec import TrainSpec
from .net import BitsBackNet

ARCH = ("levels", "z1", "z2", "feat", "hidden", "width", "depth", "interp")


class BitsBackSpec(TrainSpec):
    family = "bitsback"
    defaults = {"batch": 8, "crop": 64, "lr": 1e-3}
    channels_last = False
    clip = 5.0

    def build(self, arch: dict) -> BitsBackNet:
        return BitsBackNet(**{k: arch[k] for k in ARCH if k in arch})

    def arch(self, model) -> dict:
        return model.config()

    def loss(self, model, x, frac):
        x = x * (255 / 128) - 1  # (x - 128) / 128
        terms = model(x)
        per = x[0].numel()
        loss = sum(v.mean() for v in terms.values()) / per
        return loss, {"bpsp": loss.item()} | {k: v.mean().item() / per for k, v in terms.items()}

    def export(self, model, info, name):
        """Weights ship as float32: float16 halves the file but cost 0.1 % in bits on Kodak
        crops (exact mode's 2**-16 weight grid is finer than float16's)."""
        config = {"modality": "image", "lossless": True, "arch": model.config(), "tile": 128, "chunk_pixels": 1 << 21}
        return config, {k: v.float().contiguous() for k, v in model.state_dict().items()}
