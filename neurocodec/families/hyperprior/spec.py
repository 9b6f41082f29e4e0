"""Training of the variable-rate hyperprior: one network, every rate level in each batch.

Each crop of a batch draws a continuous rate level in [0, L-1]; its lambda interpolates the
trained lambdas geometrically, exactly as its gains do, so every quality between two trained
levels is trained too. The entropy bottleneck's quantiles have their own optimizer (aux loss).
"""

from __future__ import annotations

import math

import torch

from ...errors import InputError
from ...train.spec import TrainSpec, unwrap
from ...train.widen import widen
from .net import LAMBDAS, LEVELS, VariableRateHyperprior, grow_gains


class HyperpriorSpec(TrainSpec):
    family = "hyperprior"
    defaults = {"batch": 8, "crop": 128, "lr": 2e-4}
    options = {"N": (96, "hyper-latent channels, and the analysis/synthesis width unless --width (a new model only)"),
               "M": (160, "latent channels (a new model only)"),
               "width": (None, "channels inside the analysis and synthesis (a new model: N); wider than a resumed "
                               "model's widens them, the new units starting without effect on its output", int),
               "levels": (None, f"rate levels, the first L of the lambdas {', '.join(map(str, LAMBDAS))} (a new "
                                f"model: {LEVELS}); more than a resumed model's adds levels above its top, their gains "
                                "extrapolated, then trained", int),
               "learn": ("all", "what learns: 'all', or 'synthesis' (g_s only: the coded latents, their entropy model "
                                "and so every file's size stay as they were; the decoder is fitted to them)",
                         ("all", "synthesis"))}
    synthesis_parts = ("g_s.",)  # what learns with --learn synthesis
    network = VariableRateHyperprior

    @property
    def synthesis_only(self) -> bool:
        return self.opts["learn"] == "synthesis"

    def setup(self, model, data, device):
        if self.synthesis_only:
            for name, p in model.named_parameters():
                p.requires_grad_(name.startswith(self.synthesis_parts))

    def build(self, arch: dict) -> VariableRateHyperprior:
        N = arch.get("N", self.opts["N"])
        return self.network(N=N, M=arch.get("M", self.opts["M"]), levels=self.levels(arch), width=self.width(arch, N))

    def levels(self, arch: dict) -> int:
        """The resumed model's levels (nine for records without any), or more if told."""
        had = arch.get("levels", LEVELS) if arch else None  # None: a new model
        told = self.opts["levels"]
        if told is not None and not (had or 2) <= told <= len(LAMBDAS):
            raise InputError(f"--levels {told}: a model has 2 to {len(LAMBDAS)} rate levels"
                             + (f", and levels are only added to a resumed model's {had}" if had else ""))
        return told or had or LEVELS

    def width(self, arch: dict, N: int) -> int:
        """The resumed model's g_a/g_s width (N for records without one), or more if told."""
        had = arch.get("width", N) if arch else None
        told = self.opts["width"]
        if told is not None and not (had or 1) <= told <= 1024:
            raise InputError(f"--width {told}: the analysis and synthesis take 1 to 1024 channels"
                             + (f", and are only widened from a resumed model's {had}" if had else ""))
        return told or had or N

    def arch(self, model) -> dict:
        return {"N": model.N, "M": model.M, "levels": model.levels, "width": model.width}

    def from_codec(self, config, weights):
        from .weights import float_state

        arch = {"N": config["N"], "M": config["M"], "levels": config["levels"], "width": config.get("width", config["N"])}
        return float_state(weights), {"arch": arch}

    def state(self, model):
        """The learned tensors only: compressai's derived CDF buffers are rebuilt, not stored."""
        return {k: v for k, v in model.state_dict().items() if not k.startswith("gaussian_conditional.") and "._" not in k}

    def load(self, model, state):
        if not hasattr(model, "context"):  # resumed from a context model: its transforms and hyperprior
            state = {k: v for k, v in state.items() if k.split(".")[0] not in ("context", "ep")}
        model.load_learned(widen(grow_gains(state, model.levels), model))

    def loss(self, model, x, frac):
        levels = unwrap(model).levels
        level, lam = rate_levels(x.shape[0], levels - 1, levels, x.device)
        out = model(x, level)
        bits = sum(-torch.log2(l).flatten(1).sum(1) for l in out["likelihoods"].values())
        bpp = bits / (x.shape[2] * x.shape[3])
        mse = ((out["x_hat"] - x) ** 2).flatten(1).mean(1)
        psnr = -10 * math.log10(max(mse.mean().item(), 1e-10))
        return (lam * 255**2 * mse + bpp).mean(), {"bpp": bpp.mean().item(), "psnr": psnr}

    def lr(self, base, frac):
        return base if frac < 0.8 else base / 4  # constant, then a quarter in the last fifth

    def aux_parameters(self, model):
        return [] if self.synthesis_only else [p for n, p in model.named_parameters() if n.endswith("quantiles")]

    def aux_loss(self, model):
        """The entropy bottleneck's quantile loss (nothing with --learn synthesis: they are fixed)."""
        return 0.0 if self.synthesis_only else model.entropy_bottleneck.loss()

    def export(self, model, info, name):
        from .codec import default_config
        from .weights import export_weights

        return default_config(name, model), export_weights(model)


def rate_levels(n: int, top: float, levels: int, device, bottom: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n continuous rate levels drawn uniformly in [bottom, top], and their lambdas: the
    trained lambdas interpolated geometrically, as the gains are (extrapolated below 0)."""
    level = bottom + torch.rand(n, device=device) * (top - bottom)
    lo = level.floor().long().clamp(0, levels - 2)
    a = level - lo
    log_lambdas = torch.tensor(LAMBDAS, device=device).log()
    return level, ((1 - a) * log_lambdas[lo] + a * log_lambdas[lo + 1]).exp()
