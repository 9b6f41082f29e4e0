"""Training of `vqlossless`: maximum likelihood of the pixels given a frozen vq codec's code
vectors, the stage count drawn at random for each batch (so one model serves every `n`), or
fixed (`--train-stages`, to specialise a trained model for the count the codec ships with)."""

from __future__ import annotations

import torch

from ... import registry
from ...train.spec import TrainSpec, unwrap
from .net import VQLossless

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
            return VQLossless(**arch)  # `load` then brings the vq weights
        from ...train.checkpoint import load_codec_folder

        config, _ = load_codec_folder(self.opts["vq"])
        if config.get("family") != "vq":
            raise ValueError(f"--vq takes a vq codec, not '{self.opts['vq']}'")
        pin = {"codec": config.get("name", self.opts["vq"]), "weights_sha256": config["weights_sha256"]}
        model = VQLossless(vq=config["arch"], width=self.opts["width"], vq_weights=pin)
        self._load_vq(model)
        return model

    def arch(self, model) -> dict:
        return model.arch()

    def from_codec(self, config, weights):
        """A shipped folder: the pixel model, and the pin (also in its arch)."""
        from .codec import VQ_PIN

        return {k: v.float() for k, v in weights.items() if k != VQ_PIN}, {"arch": dict(config["arch"])}

    def state(self, model):
        """The pixel model only: the vq parts are frozen, and come from the pinned vq weights."""
        return {k: v for k, v in model.state_dict().items() if not k.startswith("vq.")}

    def load(self, model, state):
        model.load_pixel_model(state)
        self._load_vq(model)

    @staticmethod
    def _load_vq(model) -> None:
        """The pinned vq weights, as shipped in float32 (a checkpoint's copy may be float16)."""
        model.load_vq(registry.weights_by_digest(model.vq_weights["codec"], model.vq_weights["weights_sha256"]))

    def loss(self, model, x, frac):
        stages = unwrap(model).vq.stages
        n = min(self.opts["train_stages"], stages) or int(torch.randint(1, stages + 1, ()).item())  # the loop seeds torch
        bpsp = model(x, n)
        return bpsp, {"bpsp": bpsp.item()}

    def export(self, model, info, name):
        from .codec import VQ_PIN, default_config

        stages = min(max(int(self.opts["stages"]), 1), model.vq.stages)
        # the pixel model only; the vq weights stay the vq codec's, pinned by their digest
        weights = {k: v.float().contiguous() for k, v in model.state_dict().items() if not k.startswith("vq.")}
        weights[VQ_PIN] = torch.tensor(list(bytes.fromhex(model.vq_weights["weights_sha256"])), dtype=torch.uint8)
        return default_config(name, model, stages), weights
