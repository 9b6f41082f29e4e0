"""Training of the `pixelcnn` causal pixel model: maximum likelihood on random crops."""

from __future__ import annotations

import torch

from ...train.spec import TrainSpec
from .net import CausalPixelModel, normalize

ARCH_KEYS = ("radius", "features", "layers", "head_hidden", "mixtures")


class PixelCNNSpec(TrainSpec):
    family = "pixelcnn"
    defaults = {"batch": 16, "crop": 64, "lr": 2e-3}
    options = {"features": (128, "network width (a new model only)"),
               "radius": (4, "causal neighbourhood radius (a new model only)")}
    channels_last = False

    def build(self, arch: dict) -> CausalPixelModel:
        arch = arch or {"features": self.opts["features"], "radius": self.opts["radius"]}
        return CausalPixelModel(**{k: arch[k] for k in ARCH_KEYS if k in arch})

    def arch(self, model) -> dict:
        return {"radius": model.radius, "features": model.context.out_channels, "layers": len(model.trunk),
                "head_hidden": model.heads[0].hidden.out_channels, "mixtures": model.mixtures}

    def loss(self, model, x, frac):
        bpsp = model(normalize(torch.round(x * 255)))
        return bpsp, {"bpsp": bpsp.item()}

    def export(self, model, info, name):
        from .codec import default_config

        config = default_config(name, self.arch(model))
        return config, {k: v.float().contiguous() for k, v in model.state_dict().items()}
