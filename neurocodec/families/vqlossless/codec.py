"""`vqlossless`: lossless image codec, a vq codec's indices plus the image given them.

Coding a tile (at most `tile` x `tile` pixels):

    x --vq g_a, RVQ--> the first n stages' indices     coded under the vq index prior (exact)
    z_hat = the sum of their code vectors               (fixed point: exact)
    16 phases of 4x4 interlacing, each R, G | R, B | R, G   under VQLossless's Laplaces (exact),
                                                        their scales calibrated to the image as
                                                        it is coded (`adapt`, header "adapt": 1)

It is the L3C / RC idea: a lossy description first, then the pixels given it, in 48 parallel
passes over 1/16 of the pixels each rather than one pass per pixel. `n` (the header's "stages") trades index bits
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
from ..vq.codec import analyse, code_indices
from ..vq.net import STRIDE
from .adapt import ScaleAdapter
from ...entropy.calibration import normalized_error
from .net import BLOCK, LEVEL, LOG_SCALE_RANGE, PHASES, RADIUS, VQLossless

# The largest tile a file may ask for: the encoder writes 1024, whose condition and canvas
# (float64, 12 values a pixel) and the condition's widest layer take about 0.3 GB.
MAX_TILE = 1024
VQ_PIN = "vq_sha256"  # the weights tensor holding the SHA-256 of the vq weights file (32 bytes)
# The most pixels a tile may hold per byte of its chunk (LikelihoodCodec.samples_per_chunk_byte).
# Measured (fuzz/measure_bounds.py --codecs vqlossless --size 256) with the shipped weights and
# the calibration to the image, flat images are the most compressible: black 18.5 pixels a
# byte, white 11.0, grey 3.7. 2**7 leaves a margin of 7; decoding takes about 5 us a pixel, so
# a chunk asks for at most about 0.7 ms of work per byte. Measure again after training: a
# sharper model codes flat images in fewer bytes (the encoder refuses to write a part over the
# bound).
PIXELS_PER_CHUNK_BYTE = 1 << 7


@dataclass
class VQLosslessConfig:
    arch: dict
    stages: int = 4
    tile: int = 1024
    adapt: bool = True  # calibrate the scales to the image as it is coded (adapt.py)


@registry.family("vqlossless", spec="neurocodec.families.vqlossless.spec:VQLosslessSpec", config=VQLosslessConfig)
class VQLosslessCodec(LikelihoodCodec):
    """Parts are tiles, each one `Lockstep`: the indices, then the 16 phases."""

    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE
    parallel_parts = True  # a part's coding keeps no state on the codec
    part_threads = None  # a one-tile image: 48 large passes, where torch's threads pay

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, lossless=True)
        self.net = VQLossless(**config["arch"])
        # the vq parts: the weights file this one pins (part of its digest), wherever it is kept
        pin = bytes(weights[VQ_PIN].tolist()).hex()
        self.net.load_vq(registry.weights_by_digest(self.net.vq_weights.get("codec", "vq"), pin))
        self.net.load_pixel_model({k: v.float() for k, v in weights.items() if k != VQ_PIN})
        self.net.eval()
        self.stages = int(config.get("stages", 4))
        self.tile = int(config.get("tile", 1024))
        self.adapt = bool(config.get("adapt", True))
        self.books_fixed = exact.to_fixed(self.net.vq.rvq.codebooks)

    def params(self, x, quality) -> dict:
        return {"stages": self.stages, "tile": self.tile, "adapt": int(self.adapt)}

    def check_params(self, params: dict) -> dict:
        limits.header_int(params, "stages", 1, self.net.vq.stages, self.name)
        limits.header_int(params, "tile", 16, MAX_TILE, self.name)
        if "adapt" in params:  # files written before it have none: no calibration
            limits.header_int(params, "adapt", 0, 1, self.name)
        return params

    def part_step(self, shapes, params) -> Lockstep:
        n, (h, w), adapt = params["stages"], shapes[0][:2], bool(params.get("adapt", 0))
        return Lockstep(lambda io, tiles: self._tile(io, n, h, w, tiles, adapt), name="tile")

    def _tile(self, io, n: int, h: int, w: int, tiles, adapt: bool) -> list[np.ndarray]:
        net, hl, wl = self.net, -(-h // STRIDE), -(-w // STRIDE)
        known = None if io.decoding else analyse(net.vq, tiles[0], n)  # float layers: exact mode leaves them be
        _, z_hat = code_indices(io, net.vq.prior, self.books_fixed, n, hl, wl, known)  # z_hat on the fixed grid
        cond = net.condition(z_hat, n / net.vq.stages)
        # the pixels coded so far (exact units, zero elsewhere) and where they are, zero-padded
        r = RADIUS
        padded = torch.zeros(1, 4, STRIDE * hl + 2 * r, STRIDE * wl + 2 * r, dtype=torch.float64)
        canvas = padded[:, :, r:-r, r:-r]
        errors = torch.zeros_like(padded[:, :3])  # their normalised errors, padded alike
        error_canvas = errors[:, :, r:-r, r:-r]
        lo, hi = (v * exact.ONE for v in LOG_SCALE_RANGE)
        adapter = ScaleAdapter() if adapt else None
        for p, (a, b) in enumerate(PHASES):
            rows, cols = max(0, -(-(h - a) // BLOCK)), max(0, -(-(w - b) // BLOCK))  # the phase's pixels in the tile
            features = net.phases.features(padded, cond, p, errors)
            here = canvas[:, :, a::BLOCK, b::BLOCK]  # a view: the phase's pixels, filled channel by channel
            here_errors = error_canvas[0, :, a::BLOCK, b::BLOCK]
            if adapter:
                adapter.start_phase((a, b), errors, padded[:, 3:])
            for k in range(3):
                mean, log_scale = net.phases.head(k, features, here[:, :k] if k else None)[0, :, :rows, :cols]
                log_scale = log_scale.clamp(lo, hi)
                base = scale = exact.fixed_exp(log_scale)
                if adapter:
                    contexts = adapter.contexts(k, log_scale)
                    scale = adapter.scale(contexts, base)
                dist = DiscretizedLaplace((128 + mean / exact.ONE * 128).numpy(), (scale * 128).numpy(), 0, 255)
                with io.at(f"phase {p} channel {k}"):
                    sym = io.code(dist, None if io.decoding else tiles[0][a::BLOCK, b::BLOCK, k].ravel())
                symbols = torch.from_numpy(np.asarray(sym, dtype=np.float64)).view(rows, cols)
                here[0, k, :rows, :cols] = (symbols - 128) * LEVEL
                u = here_errors[k, :rows, :cols] = normalized_error(here[0, k, :rows, :cols], mean, base)
                if adapter:
                    adapter.update(contexts, u)
            here[0, 3, :rows, :cols] = exact.ONE
        if not io.decoding:
            return tiles
        return [(canvas[0, :3, :h, :w] / LEVEL + 128).permute(1, 2, 0).numpy().astype(np.uint8)]


def default_config(name: str, net: VQLossless, stages: int) -> dict:
    return {"name": name, "family": "vqlossless", "modality": "image", "lossless": True,
            "arch": net.arch(), "stages": stages, "tile": 1024, "adapt": True}
