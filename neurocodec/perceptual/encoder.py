"""The self-supervised image encoder: a small VGG-like convnet (five stages, batch norm, ReLU).

Every stage's output is a "tap": the perceptual distance compares all of them (LPIPS-style), and
the representation (`neurocodec.perceptual.features`) is the spatial mean of the last one.
Training adds a projection head (`ProjectionHead`), which is not shipped: as in SimCLR, the
layer before the head transfers better than the head's output.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).parent / "weights"
CONFIG = "config.json"
WEIGHTS = "encoder.safetensors"
DEFAULT_WIDTHS = (32, 32, 64, 128, 256)

# inputs are RGB 0..255, mapped to roughly zero mean and unit spread
MEAN, SCALE = 127.5, 64.0


def _block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Encoder(nn.Module):
    """Stage 0 keeps the resolution (one 3x3 conv); stages 1.. halve it, then refine (two convs)."""

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS):
        super().__init__()
        self.widths = tuple(widths)
        stages = [nn.Sequential(*_block(3, widths[0], 1))]
        for cin, cout in zip(widths[:-1], widths[1:]):
            stages.append(nn.Sequential(*_block(cin, cout, 2), *_block(cout, cout, 1)))
        self.stages = nn.ModuleList(stages)

    @property
    def dim(self) -> int:
        return self.widths[-1]

    @staticmethod
    def normalise(x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) floats 0..255 -> the network's input range."""
        return (x - MEAN) / SCALE

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output for pixels `x` (B, 3, H, W, floats 0..255)."""
        out, h = [], self.normalise(x)
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim): the last stage averaged over space."""
        return self.taps(x)[-1].mean(dim=(2, 3))


class ProjectionHead(nn.Module):
    """SimCLR's MLP head, used in training only."""

    def __init__(self, dim: int, hidden: int = 256, out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def read_config(folder: str | Path = WEIGHTS_DIR) -> dict:
    return json.loads((Path(folder) / CONFIG).read_text())


@lru_cache(maxsize=4)
def load_encoder(folder: str | Path = WEIGHTS_DIR) -> Encoder:
    """The shipped encoder (or the one in `folder`), in eval mode, float32, on the CPU; loaded
    once per process, without pickle."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_config(folder)
    model = Encoder(tuple(config["arch"]["widths"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(folder / config["weights"])).items()}
    model.load_state_dict(state)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
