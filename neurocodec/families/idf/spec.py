"""Training of the `idf` integer discrete flow: its code length in bits per sub-pixel.

Most of the run trains the paper's discretized logistic prior; the last `coded_frac` of the
budget fine-tunes under the distribution that is actually coded (a discretized Laplace, which
constriction codes natively and fast), after fitting once a scale factor from the logistic's
scales to the Laplace's. Before the switch, the bits of the same latents under logistic,
Laplace and Gaussian priors are recorded in `info["prior_cost"]`: the measured cost of
coding a Laplace.
"""

from __future__ import annotations

import json
import math

import torch

from ...errors import InputError
from ...train.crops import RandomCrops
from ...train.spec import TrainSpec, unwrap
from ...train.widen import widen
from .net import BITS, IDF

ARCH_KEYS = ("levels", "couplings", "hidden")
DEFAULT_ARCH = {"levels": 4, "couplings": [1, 2, 2, 2], "hidden": [24, 40, 64, 64]}


@torch.no_grad()
def compare_priors(net: IDF, x: torch.Tensor) -> dict:
    """bpsp of the same latents under each prior, the Laplace and Gaussian with their best
    global scale factor 2**(k/8); returns the factors too."""
    groups = net.groups(x)
    out = {"logistic": float(sum(BITS["logistic"](*g).sum() for g in groups) / x.numel())}
    for prior in ("laplace", "gaussian"):
        best = None
        for k in range(-8, 17):
            f = 2.0 ** (k / 8)
            b = float(sum(BITS[prior](z, mu, ls + math.log(f)).sum() for z, mu, ls in groups) / x.numel())
            if best is None or b < best[0]:
                best = (b, f)
        out[prior], out[prior + "_factor"] = best
    return out


class IDFSpec(TrainSpec):
    family = "idf"
    defaults = {"batch": 8, "crop": 96, "lr": 2e-3}
    options = {"coded_frac": (0.15, "last fraction of the run trained under the coded (Laplace) prior"),
               "hidden": (None, "network width per level, e.g. 48,64,64,64 (a new model: "
                                f"{','.join(map(str, DEFAULT_ARCH['hidden']))}); wider than a resumed model's widens it, "
                                "the new units starting without effect on its output")}
    autocast = False  # the flow's latents are integers in the thousands: beyond bfloat16
    channels_last = False
    clip = 5.0

    def build(self, arch: dict) -> IDF:
        arch = arch or DEFAULT_ARCH
        return IDF(levels=arch["levels"], couplings=tuple(arch["couplings"]), hidden=self.hidden(arch["hidden"]))

    def hidden(self, had: list[int]) -> tuple[int, ...]:
        """The widths to build: the resumed (or default) ones, or those told, if no narrower."""
        told = self.opts["hidden"]
        if told is None:
            return tuple(had)
        try:
            widths = tuple(int(w) for w in str(told).split(","))
        except ValueError:
            widths = ()
        if len(widths) != len(had) or any(w < h for w, h in zip(widths, had)):
            raise InputError(f"--hidden {told}: give {len(had)} comma-separated widths, each at least "
                             f"{','.join(map(str, had))}")
        return widths

    def load(self, model, state):
        model.load_state_dict(widen(state, model))

    def arch(self, model) -> dict:
        return {"levels": model.n_levels, "couplings": list(model.couplings), "hidden": list(model.hidden)}

    def from_codec(self, config, weights):
        return {k: v.float() for k, v in weights.items()}, {"arch": {k: config[k] for k in ARCH_KEYS}}

    def setup(self, model, source, device):
        self.val = torch.round(RandomCrops(source.images, source.size, device=device, seed=12345).batch(16) * 255)
        self.prior, self.log_factor, self.fit = "logistic", 0.0, None

    def _switch(self, model) -> None:
        self.fit = compare_priors(unwrap(model), self.val)
        self.prior, self.log_factor = "laplace", math.log(self.fit["laplace_factor"])
        print(f"switch to the coded prior: {json.dumps(self.fit)}")

    def loss(self, model, x, frac):
        if self.prior == "logistic" and frac >= 1 - self.opts["coded_frac"]:
            self._switch(model)
        bpsp = model(torch.round(x * 255), self.prior, self.log_factor)
        return bpsp, {f"{self.prior} bpsp": bpsp.item()}

    def lr(self, base, frac):
        return base * min(1.0, 0.1 + 0.9 * (1 - frac) / 0.4)  # constant, then down to a tenth over the last 40 %

    measures = ("val_bpsp",)

    def finish(self, model, info):
        if self.fit is None:  # a run too short to switch still records the coded prior's fit
            self._switch(model)
        info["prior_cost"] = self.fit
        info["coded_prior"], info["scale_factor"] = "laplace", self.fit["laplace_factor"]
        with torch.no_grad():
            info["val_bpsp"] = round(float(model(self.val, "laplace", self.log_factor)), 4)

    def export(self, model, info, name):
        """float16 weights: exact mode rounds them to its own grid at load anyway."""
        config = {"modality": "image", "lossless": True, **self.arch(model), "coded_prior": "laplace",
                  "scale_factor": info["scale_factor"], "tile": 512}
        return config, {k: v.half().contiguous() for k, v in model.state_dict().items()}
