"""Training of `vqlossless`: maximum likelihood of the pixels given a frozen vq codec's code
vectors, the stage count drawn at random for each batch (so one model serves every `n`), or
fixed (`--train-stages`, to specialise a trained model for the count the codec ships with)."""

from __future__ import annotations

import torch

from ...train.spec import TrainSpec, unwrap
from ..vq.codec import TRAINING_ONLY
from .net import VQLossless

ARCH_KEYS = ("cond", "cond_width", "width", "head")


class VQLosslessSpec(TrainSpec):
    family = "vqlossless"
    defaults = {"batch": 8, "crop": 128, "lr": 1e-3}
    options = {"vq": ("vq", "the vq codec whose indices condition the pixels (a new model only)"),
               "stages": (4, "the stages the exported codec codes (1 to the vq codec's)"),
               "train_stages": (0, "train at this stage count only (0: every count, drawn per batch)"),
               "width": (48, "width of the pixel network (a new model only)")}
    autocast = False

    def build(self, arch: dict) -> VQLossless:
        if arch:
            return VQLossless(**arch)
        from ...train.checkpoint import load_codec_folder

        config, weights = load_codec_folder(self.opts["vq"])
        if config.get("family") != "vq":
            raise ValueError(f"--vq takes a vq codec, not '{self.opts['vq']}'")
        model = VQLossless(vq=config["arch"], width=self.opts["width"])
        state = {k: v.float() for k, v in weights.items() if not k.startswith("g_s.")}  # the decoder's synthesis is not needed
        missing, unexpected = model.vq.load_state_dict(state, strict=False)
        if unexpected or set(missing) - set(TRAINING_ONLY):
            raise ValueError(f"'{self.opts['vq']}' does not fit: missing {missing}, unexpected {unexpected}")
        return model

    def arch(self, model) -> dict:
        return model.arch()

    def load(self, model, state):
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {f"vq.{k}" for k in TRAINING_ONLY}:
            raise ValueError(f"checkpoint does not fit the vqlossless network: missing {missing}, unexpected {unexpected}")

    def loss(self, model, x, frac):
        stages = unwrap(model).vq.stages
        n = min(self.opts["train_stages"], stages) or int(torch.randint(1, stages + 1, ()).item())  # the loop seeds torch
        bpsp = model(x, n)
        return bpsp, {"bpsp": bpsp.item()}

    def export(self, model, info, name):
        from .codec import default_config

        stages = min(max(int(self.opts["stages"]), 1), model.vq.stages)
        weights = {k: (v.half() if k.startswith("vq.g_a.") and v.dim() == 4 else v.float()).contiguous()
                   for k, v in model.state_dict().items() if k.removeprefix("vq.") not in TRAINING_ONLY}
        return default_config(name, model, stages), weights
