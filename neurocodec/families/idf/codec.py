"""`idf`: lossless RGB image codec from an Integer Discrete Flow (`idf_net.IDF`).

Coding a tile (at most `tile` x `tile` pixels, replicate-padded to a multiple of 2**levels):
the flow maps the pixels to integer latents in parts, each with a prior (mean, log-scale)
computed by an exact network from the parts decoded before it (`IDF.groups`). A part is coded
as the residual r = z - round(mean) under a discretized Laplace(mean - round(mean),
scale_factor * fixed_exp(log-scale)) on [-R, R] (constriction's QuantizedLaplace: native and
fast; a logistic would need a probability table per latent). |r| >= R is an escape: +-R,
then |r| - R in two 12-bit uniform digits. The decoder decodes the parts in the same order and
inverts the flow in integer arithmetic.

Determinism: every network runs under `exact.exact_mode()` on float64 integers and scales come
from `exact.fixed_exp`, so the priors, and so the files, are bit-identical on any machine,
thread count and tile. The container's content checksum verifies every decoded image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ... import exact
from ... import limits, registry
from ...compose import LikelihoodCodec, Step
from ...entropy import Categorical, DiscretizedLaplace
from ...errors import FormatError
from .net import IDF

R = 2**12  # residuals are coded on [-R, R]; +-R is the escape
DIGIT = 2**12  # an escaped magnitude is two digits of this base
UNIFORM = Categorical(np.ones(DIGIT))
# The largest tile a file may ask for. The flow runs on a whole tile at once (integer
# convolutions in float64 with up to 64 channels); the shipped tiles are 512 x
# 512 and a file may ask for up to 1024 x 1024 (four times the pixels). Before, 8192 x 8192
# tiles made the integer conv2d ask for 1.4-1.8 GB.
MAX_TILE = 1024
# The most pixels a tile may hold per byte of its chunk (LikelihoodCodec.samples_per_chunk_byte).
# Measured (fuzz/measure_bounds.py), flat 256 x 256 images cost at least one byte per 1.8
# pixels; 2**5 leaves a margin of 18.
PIXELS_PER_CHUNK_BYTE = 1 << 5


class Residuals(Step):
    """One part of the latents: residuals r = z - round(mean) under the Laplace prior, then
    the escaped magnitudes as two uniform digits each."""

    name = "part"

    def __init__(self, mu: torch.Tensor, log_scale: torch.Tensor, scale_factor: float):
        self.centre = torch.floor(mu + 0.5)
        scale = exact.fixed_exp(log_scale * exact.ONE) * scale_factor
        self.dist = DiscretizedLaplace((mu - self.centre).numpy(), scale.numpy(), -R, R)

    def push(self, stream, z: torch.Tensor) -> None:
        r = (z - self.centre).numpy().ravel().astype(np.int64)
        stream.push(np.clip(r, -R, R), self.dist)
        esc = np.abs(r[np.abs(r) >= R]) - R
        # cannot happen: |translation| <= 1024 * 128 per coupling, so |latent| < 2**21
        if esc.size and esc.max() >= DIGIT**2:
            raise OverflowError("latent out of the escape range")
        stream.push(esc // DIGIT, UNIFORM)
        stream.push(esc % DIGIT, UNIFORM)

    def pop(self, stream) -> torch.Tensor:
        r = stream.pop(self.dist)
        esc = np.abs(r) == R
        n = int(esc.sum())
        if n:
            mag = R + stream.pop(UNIFORM, n) * DIGIT + stream.pop(UNIFORM, n)
            r[esc] = np.sign(r[esc]) * mag
        return torch.from_numpy(r.astype(np.float64)).reshape(self.centre.shape) + self.centre


class FlowTile(Step):
    """A tile through the flow: the encoder codes the latent parts the forward flow gives, in
    order; the decoder inverts the flow, which asks for each part given those before it."""

    name = "flow"

    def __init__(self, codec: "IDFCodec", shape: tuple[int, int]):
        self.codec, self.h, self.w = codec, shape[0], shape[1]

    def push(self, stream, tiles: list[np.ndarray]) -> None:
        with stream.at(self.name):
            for z, mu, ls in self.codec.net.groups(self.codec._pad(tiles[0])):
                Residuals(mu, ls, self.codec.scale_factor).push(stream, z)

    def pop(self, stream) -> list[np.ndarray]:
        m, h, w = self.codec.net.multiple, self.h, self.w
        with stream.at(self.name):
            shape = (1, 3, h + (-h % m), w + (-w % m))
            x = self.codec.net.decode(shape, lambda mu, ls: Residuals(mu, ls, self.codec.scale_factor).pop(stream))
        x = x[0, :, :h, :w]
        if x.min() < 0 or x.max() > 255:
            raise FormatError("corrupted .ncd file: idf decoded pixels out of range")
        return [x.permute(1, 2, 0).numpy().astype(np.uint8)]


@dataclass
class IDFConfig:
    levels: int
    couplings: list
    hidden: list
    scale_factor: float
    tile: int = 512


@registry.family("idf", spec="neurocodec.families.idf.spec:IDFSpec", config=IDFConfig)
class IDFCodec(LikelihoodCodec):
    """Parts are tiles, each one `FlowTile`."""
    parallel_parts = True  # a part's coding keeps no state on the codec

    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, tile=int(config.get("tile", 512)))
        self.scale_factor = float(config["scale_factor"])
        self.net = IDF(config["levels"], tuple(config["couplings"]), tuple(config["hidden"]))
        self.net.load_state_dict({k: v.float() for k, v in weights.items()})
        self.net.eval()
        if self.tile % self.net.multiple:
            raise ValueError(f"tile must be a multiple of {self.net.multiple}")

    def check_params(self, params: dict) -> dict:
        tile = limits.header_int(params, "tile", self.net.multiple, MAX_TILE, self.name)
        if tile % self.net.multiple:
            raise FormatError(f"corrupted .ncd file: idf tiles must be a multiple of {self.net.multiple}, not {tile}")
        return params

    def part_step(self, shapes, params) -> FlowTile:
        return FlowTile(self, shapes[0][:2])

    def _pad(self, x: np.ndarray) -> torch.Tensor:
        h, w = x.shape[:2]
        m = self.net.multiple
        t = torch.from_numpy(np.array(x, dtype=np.float64)).permute(2, 0, 1)[None]
        return F.pad(t, (0, -w % m, 0, -h % m), mode="replicate")
