"""`vqlossless`: lossless image codec, a vq codec's indices plus the image given them.

Coding a tile (at most `tile` x `tile` pixels):

    x --vq g_a, RVQ--> the first n stages' indices     coded under the vq index prior (exact)
    z_hat = the sum of their code vectors               (fixed point: exact)
    the four 2x2 phases, each R, G | R, B | R, G        coded under VQLossless's Laplaces (exact)

It is the L3C / RC idea: a lossy description first, then the pixels given it, in a dozen
parallel passes rather than one pass per pixel. `n` (the header's "stages") trades index bits
for a sharper condition; the encoder uses the config's `stages`.

Determinism. Every number the coder sees comes from exact layers (neurocodec.exact) on
integer inputs: the indices' categorical tables as in `vq`, the Laplaces' means and scales
from exact layers and the fixed exp table. Only the encoder's analysis (g_a, nearest codes)
runs in float, and its result is coded, not recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import exact, limits, registry
from ...compose import LikelihoodCodec, Lockstep
from ...entropy import DiscretizedLaplace
from ..vq.codec import TRAINING_ONLY, analyse, code_indices
from ..vq.net import STRIDE
from .net import LOG_SCALE_RANGE, PHASES, VQLossless, space_to_depth

MAX_TILE = 2048  # the largest tile a file may ask for (the condition is computed for a whole tile)
# The most pixels a tile may hold per byte of its chunk (LikelihoodCodec.samples_per_chunk_byte).
# Every sub-pixel costs at least the 2**-24 probability floor of a leaky quantized Laplace, and
# flat images are the most compressible: measured with fuzz/measure_bounds.py.
PIXELS_PER_CHUNK_BYTE = 1 << 10


@dataclass
class VQLosslessConfig:
    arch: dict
    stages: int = 4
    tile: int = 1024


@registry.family("vqlossless", spec="neurocodec.families.vqlossless.spec:VQLosslessSpec", config=VQLosslessConfig)
class VQLosslessCodec(LikelihoodCodec):
    """Parts are tiles, each one `Lockstep`: the indices, then the four phases."""

    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE
    parallel_parts = True  # a part's coding keeps no state on the codec

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, lossless=True)
        self.net = VQLossless(**config["arch"])
        missing, unexpected = self.net.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
        if unexpected or set(missing) - {f"vq.{k}" for k in TRAINING_ONLY}:
            raise ValueError(f"vqlossless weights do not fit the network: missing {missing}, unexpected {unexpected}")
        self.net.eval()
        self.stages = int(config.get("stages", 4))
        self.tile = int(config.get("tile", 1024))
        self.books_fixed = exact.to_fixed(self.net.vq.rvq.codebooks)

    def params(self, x, quality) -> dict:
        return {"stages": self.stages, "tile": self.tile}

    def check_params(self, params: dict) -> dict:
        limits.header_int(params, "stages", 1, self.net.vq.stages, self.name)
        limits.header_int(params, "tile", 16, MAX_TILE, self.name)
        return params

    def part_step(self, shapes, params) -> Lockstep:
        n, (h, w) = params["stages"], shapes[0][:2]
        return Lockstep(lambda io, tiles: self._tile(io, n, h, w, tiles), name="tile")

    def _tile(self, io, n: int, h: int, w: int, tiles) -> list[np.ndarray]:
        net, hl, wl = self.net, -(-h // STRIDE), -(-w // STRIDE)
        known = None if io.decoding else analyse(net.vq, tiles[0], n)  # float layers: exact mode leaves them be
        indices = code_indices(io, net.vq.prior, self.books_fixed, n, hl, wl, known)
        z_hat = sum(self.books_fixed[s][indices[s]] for s in range(n)).permute(2, 0, 1)[None]
        cond = net.phases.cond(space_to_depth(net.condition(z_hat, n / net.vq.stages)))
        canvas = torch.zeros(1, 12, 8 * hl, 8 * wl, dtype=torch.float64)  # the pixels coded so far
        target = None
        if not io.decoding:
            full = np.zeros((16 * hl, 16 * wl, 3), dtype=np.int64)
            full[:h, :w] = tiles[0]
            target = space_to_depth(torch.from_numpy(full).permute(2, 0, 1)[None]).numpy()
        lo, hi = (v * exact.ONE for v in LOG_SCALE_RANGE)
        for p, (a, b) in enumerate(PHASES):
            rows, cols = -(-(h - a) // 2), -(-(w - b) // 2)  # this phase's pixels inside the tile
            features = net.phases.features(cond, canvas, p)
            for k in range(3):
                c = 3 * p + k
                mean, log_scale = net.phases.head(k, features, canvas[:, 3 * p : c] if k else None)[0, :, :rows, :cols]
                dist = DiscretizedLaplace((128 + mean / exact.ONE * 128).numpy(),
                                          (exact.fixed_exp(log_scale.clamp(lo, hi)) * 128).numpy(), 0, 255)
                with io.at(f"phase {p} channel {k}"):
                    sym = io.code(dist, None if target is None else target[0, c, :rows, :cols].ravel())
                canvas[0, c, :rows, :cols] = (torch.from_numpy(np.asarray(sym, dtype=np.float64)).view(rows, cols) - 128) * (exact.ONE / 128)
        if not io.decoding:
            return tiles
        image = torch.zeros(3, 16 * hl, 16 * wl, dtype=torch.float64)
        for p, (a, b) in enumerate(PHASES):
            image[:, a::2, b::2] = canvas[0, 3 * p : 3 * p + 3]
        return [(image[:, :h, :w] / (exact.ONE / 128) + 128).permute(1, 2, 0).numpy().astype(np.uint8)]


def default_config(name: str, net: VQLossless, stages: int) -> dict:
    return {"name": name, "family": "vqlossless", "modality": "image", "lossless": True,
            "arch": net.arch(), "stages": stages, "tile": 1024}
