"""HiFiC-style training of the `perceptual` family, resumed from a trained `context` codec.

loss = lambda * 255^2 * MSE + bpp                    (the context model's rate-distortion)
     + k_P * perceptual distance(x_hat, x)           (neurocodec.perceptual: LPIPS-style)
     + k_G * softplus(-D(x_hat, y_hat))              (non-saturating GAN loss)

and the discriminator D learns, by its own optimizer after each step, softplus(-D(x, y_hat))
+ softplus(D(x_hat, y_hat)) on the same batch. Rates are drawn from the lowest `--top-level`
levels of the context model's nine, where MSE-trained codecs blur most. The perceptual
distance's encoder is frozen; FID and KID are measured with a second encoder trained apart
and never used as a loss (issue 12).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...perceptual import feature_distance, load_encoder
from ...train.spec import unwrap
from ...train.widen import widen
from ..context.spec import ContextSpec
from ..hyperprior.spec import rate_levels
from .net import GenerativeContext


class PerceptualSpec(ContextSpec):
    family = "perceptual"
    defaults = {"batch": 8, "crop": 256, "lr": 5e-5}
    options = {**ContextSpec.options,
               "backbone": ("context", "a new model starts as this context codec ('' for an untrained one)"),
               "top_level": (3.0, "the highest rate level trained (of the backbone's 0..8)"),
               "bottom_level": (0.0, "the lowest rate level trained: below 0, under the backbone's lowest "
                                     "lambda, its gains extrapolated (down to -3)"),
               "k_perceptual": (0.5, "weight of the perceptual distance"),
               "k_adversarial": (0.01, "weight of the generator's adversarial loss"),
               "disc_lr": (1e-4, "the discriminator's learning rate")}
    synthesis_parts = ("g_s.", "disc.")
    autocast = False  # bf16 is measured for the rate-distortion terms only, not the adversarial game

    def build(self, arch: dict) -> GenerativeContext:
        if arch or not self.opts["backbone"]:
            N = arch.get("N", self.opts["N"])
            return GenerativeContext(N=N, M=arch.get("M", self.opts["M"]), levels=self.levels(arch), width=self.width(arch, N))
        from ...train.checkpoint import load_codec_folder
        from ..hyperprior.weights import float_state

        config, weights = load_codec_folder(self.opts["backbone"])
        if config.get("family") not in ("context", "perceptual"):
            raise ValueError(f"--backbone takes a context codec, not '{self.opts['backbone']}'")
        model = GenerativeContext(N=config["N"], M=config["M"], levels=config["levels"], width=config.get("width"))
        model.load_learned(float_state(weights), partial=True)  # the discriminator starts fresh
        return model

    def load(self, model, state):
        model.load_learned(widen({**{k: v for k, v in model.state_dict().items() if k.startswith("disc.")}, **state}, model))

    def setup(self, model, data, device):
        super().setup(model, data, device)
        self.encoder = load_encoder().to(device)
        self._batch = None

    def loss(self, model, x, frac):
        net = unwrap(model)
        level, lam = rate_levels(x.shape[0], self.opts["top_level"], net.levels, x.device, self.opts["bottom_level"])
        out = model(x, level)
        bits = sum(-torch.log2(l).flatten(1).sum(1) for l in out["likelihoods"].values())
        bpp = bits / (x.shape[2] * x.shape[3])
        x_hat = out["x_hat"]
        mse = ((x_hat - x) ** 2).flatten(1).mean(1)
        perceptual = feature_distance(self.encoder, x_hat.clamp(0, 1) * 255, x * 255)
        adversarial = F.softplus(-net.disc(x_hat, out["y_hat"].detach())).flatten(1).mean(1)
        self._batch = (x, x_hat.detach(), out["y_hat"].detach())
        loss = lam * 255**2 * mse + bpp + self.opts["k_perceptual"] * perceptual + self.opts["k_adversarial"] * adversarial
        psnr = -10 * math.log10(max(mse.mean().item(), 1e-10))
        return loss.mean(), {"bpp": bpp.mean().item(), "psnr": psnr, "perceptual": perceptual.mean().item(),
                             "g_adv": adversarial.mean().item()}

    def aux_parameters(self, model):
        quantiles = super().aux_parameters(model)
        return ([{"params": quantiles, "lr": 1e-3}] if quantiles else []) + [{"params": list(model.disc.parameters()), "lr": self.opts["disc_lr"]}]

    def aux_loss(self, model):
        x, x_hat, y_hat = self._batch
        real, fake = model.disc(x, y_hat), model.disc(x_hat, y_hat)
        return super().aux_loss(model) + F.softplus(-real).mean() + F.softplus(fake).mean()

    def export(self, model, info, name):
        config, weights = super().export(model, info, name)
        # -q 1..100 spans the rate levels the synthesis was trained for (bottom .. top_level)
        bottom = {"bottom_level": self.opts["bottom_level"]} if self.opts["bottom_level"] else {}
        return dict(config, family="perceptual", top_level=self.opts["top_level"], **bottom, default_quality=50,
                    bench_qualities=[1, 17, 34, 50, 67, 84, 100]), weights
