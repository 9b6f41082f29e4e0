"""Training of the `vq` family: reconstruction, commitment and the prior's bits, with
quantizer dropout (each batch keeps the first n of the S stages, n drawn at random).

The codebooks learn by EMA inside the forward pass, not by the optimizer; the prior learns
from the codes as they are (its loss reaches neither g_a nor the codebooks), so one
optimizer step trains the autoencoder for distortion and the prior for rate.
"""

from __future__ import annotations

import math

import torch

from ...train.spec import TrainSpec, unwrap
from .codec import TRAINING_ONLY
from .net import VQVAE

ARCH_KEYS = ("N", "dim", "codes", "stages", "prior_width")
COMMIT = 0.25  # weight of the commitment loss (VQ-VAE's beta)
MSE_SCALE = 255.0**2 / 100  # squared error in 8-bit levels, over 100: about 1 at 25 dB


class VQSpec(TrainSpec):
    family = "vq"
    defaults = {"batch": 8, "crop": 128, "lr": 2e-4}
    options = {"N": (128, "analysis/synthesis width (a new model only)"),
               "dim": (64, "latent and code vector size (a new model only)"),
               "codes": (1024, "codes per codebook (a new model only)"),
               "stages": (8, "residual quantization stages = operating points (a new model only)"),
               "transforms": ("", "a new model's g_a and g_s start as this hyperprior or context codec's "
                                  "(its N and M become N and dim)")}
    autocast = False  # nearest-code search and EMA sums want float32

    def build(self, arch: dict) -> VQVAE:
        if arch:
            return VQVAE(**{k: arch[k] for k in ARCH_KEYS if k in arch})
        if not self.opts.get("transforms"):
            return VQVAE(**{k: self.opts[k] for k in ARCH_KEYS if k in self.opts})
        return self._from_transforms(self.opts["transforms"])

    def _from_transforms(self, source: str) -> VQVAE:
        """A new model whose analysis and synthesis are a trained hyperprior's (the same
        compressai layout at the same stride): the codebooks and prior start from its latents."""
        from ...train.checkpoint import load_codec_folder
        from ..hyperprior.weights import float_state

        config, weights = load_codec_folder(source)
        if config.get("family") not in ("hyperprior", "context"):
            raise ValueError(f"--transforms takes a hyperprior or context codec, not '{source}'")
        net = VQVAE(N=config["N"], dim=config["M"], codes=self.opts["codes"], stages=self.opts["stages"])
        state = float_state(weights)
        net.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in ("g_a", "g_s")}, strict=False)
        return net

    def arch(self, model) -> dict:
        return {"N": model.N, "dim": model.dim, "codes": model.codes, "stages": model.stages,
                "prior_width": model.prior_width}

    def load(self, model, state):
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(k not in TRAINING_ONLY for k in missing):
            raise ValueError(f"checkpoint does not fit the vq network: missing {missing}, unexpected {unexpected}")
        if missing:  # resumed from a codec folder: running sums start from the shipped codebooks
            model.rvq.ema_count.fill_(1.0)
            model.rvq.ema_sum.copy_(model.rvq.codebooks)
            model.rvq.started.fill_(True)

    def loss(self, model, x, frac):
        stages = unwrap(model).stages
        n = int(torch.randint(1, stages + 1, ()).item())  # the loop seeds torch
        out = model(x, n)
        mse = ((out["x_hat"] - x) ** 2).mean()
        bpp = out["bits"].mean() / (x.shape[2] * x.shape[3])
        loss = MSE_SCALE * mse + COMMIT * out["commit"] + bpp
        psnr = -10 * math.log10(max(mse.item(), 1e-10))
        return loss, {"stages": n, "bpp": bpp.item(), "psnr": psnr, "commit": out["commit"].item()}

    measures = ("perplexity",)

    def finish(self, model, info):
        info["perplexity"] = [round(p, 1) for p in model.rvq.perplexity()]

    def export(self, model, info, name):
        from .codec import default_config

        def shipped(key: str, v: torch.Tensor) -> torch.Tensor:
            # float16 convolution kernels of g_a and g_s, as the hyperprior ships them; the
            # codebooks and the prior (exact: rounded from these values) stay float32
            half = key.split(".")[0] in ("g_a", "g_s") and v.dim() == 4
            return (v.half() if half else v.float()).contiguous()

        weights = {k: shipped(k, v) for k, v in model.state_dict().items() if k not in TRAINING_ONLY}
        return default_config(name, model), weights
