"""What a family tells the one training loop (`train.loop.train`): how to build its network,
what to feed it, its loss, and how to turn it into a codec folder. A family's `spec.py`
subclasses `TrainSpec`; `neurocodec train FAMILY` is made from it (options included).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class TrainSpec:
    family = ""  # the registry family the exported codec belongs to
    data_kind = "images"  # "images": random crops; "text": parallel byte streams
    default_data = "../shared/data/images/train,../shared/data/images/extra"
    defaults: dict[str, Any] = {"batch": 8, "crop": 128, "lr": 2e-4}
    options: dict[str, tuple] = {}  # extra CLI options: name -> (default, help[, choices])
    autocast = True  # bf16 autocast is safe for this family on CUDA
    channels_last = True  # convolutional: channels-last memory on CUDA
    clip = 1.0  # gradient norm clip

    def __init__(self, **options):
        self.opts = {k: v[0] for k, v in self.options.items()} | {k: v for k, v in options.items() if v is not None}

    # --- the network ------------------------------------------------------------------------
    def build(self, arch: dict) -> nn.Module:
        """A network of the architecture `arch` (a fresh one when `arch` is empty)."""
        raise NotImplementedError

    def arch(self, model: nn.Module) -> dict:
        """What `build` needs to rebuild `model`; stored in the training record."""
        raise NotImplementedError

    def from_codec(self, config: dict, weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
        """(float state, training record entries: at least "arch") of a shipped codec folder,
        to resume training from."""
        return {k: v.float() for k, v in weights.items()}, {"arch": dict(config["arch"])}

    def state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint keeps."""
        return model.state_dict()

    def load(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(state)

    def export(self, model: nn.Module, info: dict, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
        """(config, weights) of a codec folder for the trained `model`."""
        raise NotImplementedError

    # --- a step ---------------------------------------------------------------------------------
    def setup(self, model: nn.Module, data, device: str) -> None:
        """Called once before the first step (e.g. to hold out a validation batch)."""

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Image crops (B, 3, H, W, floats 0..1) or text (B, T+1 bytes) as the loss wants them."""
        return batch

    def loss(self, model: nn.Module, batch: torch.Tensor, frac: float) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimize and the figures to log, `frac` of the budget into the run."""
        raise NotImplementedError

    def lr(self, base: float, frac: float) -> float:
        """The learning rate at `frac` of the budget: cosine decay to a tenth (the loop adds
        a warm-up where the optimizer is new)."""
        return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def aux_parameters(self, model: nn.Module) -> list:
        """Parameters trained by their own optimizer (Adam, lr 1e-3) on `aux_loss`, after each
        step of the main one (none by default); or param groups ({"params": [...], "lr": ...})."""
        return []

    def aux_loss(self, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, model: nn.Module, info: dict) -> None:
        """Add final figures to the training record."""

    # the figures `finish` adds that describe the weights at the end of that run: a resumed run
    # drops them, so that no checkpoint (a run stopped before its end) or export shows another
    # run's figures as its own
    measures: tuple[str, ...] = ()


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper."""
    return getattr(model, "module", model)
