"""`pixelcnn`: lossless image codec from an autoregressive causal-neighbourhood pixel model.

Coding. The image is cut into tiles of `stripe` rows by at most `tile_width` columns; each tile
is coded as an image of its own (its neighbourhoods see zero padding beyond its borders). Up
to `group` consecutive tiles form a group, coded in lockstep into one range-coder stream, one
container chunk per group, so memory is bounded by the group whatever the image's size.

Decoding order. The model's receptive field is the causal neighbourhood of `radius`
(pixelcnn_net), so pixel (r, c) depends only on pixels decoded at earlier steps of the
wavefront t = c + (radius + 1) * r. At each step the codec gathers the neighbourhoods of every
pixel on the wavefront of every tile of the group, runs the network once on that batch, and
codes R, then G (conditioned on R), then B of all of them. A 768x512 image takes 3,323 steps
instead of 393,216 network passes, and the wavefront itself costs no bits. Shorter tiles
(`stripe`) would mean fewer, larger steps, but they bought no speed, as the time goes into
the per-pixel mixture tables, and 64-row stripes cost 0.8 % in bits
(bench/results/pixelcnn_stripes.md), so tiles are 1024 x 1024. The wavefront is one
`compose.Lockstep` program: encoder and decoder run it, the encoder with the pixels known.

Determinism. The network runs in exact mode (neurocodec.exact), the logistic CDFs and mixture
weights come from fixed tables, and the only float operations left (products, differences
and the weighted sum, in a fixed order) are correctly rounded IEEE operations, so the
probability tables given to constriction are identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import exact
from ...codec import tile_grid
from ... import limits, registry
from ...compose import LikelihoodCodec, Lockstep
from ...entropy import Categorical
from ...errors import FormatError
from .net import LOG_SCALE_MIN, CausalPixelModel

LEVEL = 32.0  # one pixel level in exact-mode units: (x - 128) / 128 * 2**12
EDGES = (torch.arange(257, dtype=torch.float32) - 128) * LEVEL - LEVEL / 2  # lower edge of each level
DEFAULTS = {"stripe": 1024, "tile_width": 1024, "group": 4}
# What a file may ask of a decoder. A group's tiles are decoded together, and it holds about
# 100 bytes per pixel of them (symbols, canvas, wavefront order): the shipped 4 tiles of 1024 x
# 1024 pixels are 2**22 pixels, about 0.5 GB; a file may ask for twice that, in tiles of up to
# 4096 x 4096 pixels. Before, a stripe and width of 16384 asked for 6.4 GB.
MAX_TILE_SIDE = 4096
MAX_GROUP = 64
MAX_GROUP_PIXELS = 1 << 23
# The most pixels a group may hold per byte of its chunk (LikelihoodCodec.samples_per_chunk_byte).
# Measured (fuzz/measure_bounds.py), the most compressible flat 256 x 256 images cost at least
# one byte per 22 pixels (black; white 17, grey 3); 2**8 leaves a margin of 11. Decoding takes
# about 55 us a pixel, so a chunk asks for at most 14 ms of work per byte (a real black image:
# 1.2 ms).
PIXELS_PER_CHUNK_BYTE = 1 << 8


def default_config(name: str, arch: dict) -> dict:
    return {"family": "pixelcnn", "name": name, "modality": "image", "lossless": True, "arch": dict(arch), **DEFAULTS}


def mixture_pmf(params: torch.Tensor, mixtures: int) -> torch.Tensor:
    """(N, 256) unnormalized level probabilities from (N, 3*mixtures) exact-mode parameters."""
    logits, means, log_scales = params.split(mixtures, dim=1)
    inv_s = exact.fixed_exp(-log_scales.clamp(min=LOG_SCALE_MIN * exact.ONE)).float()
    weights = exact.fixed_exp(logits - logits.max(dim=1, keepdim=True).values).float()
    # float32 from here (IEEE-rounded products and sums; the table entries are exact in
    # float32): the CDF of component k at edge e is sigmoid((e - mean) * inv_s), looked up at
    # table position e * a - mean * a with a = inv_s * 2**(TABLE_BITS - ACT_BITS)
    a = inv_s * 2.0 ** (exact.TABLE_BITS - exact.ACT_BITS)
    position = EDGES[None, None, :] * a[:, :, None]
    position -= (means.float() * a)[:, :, None]
    cdf = exact.fixed_sigmoid_at(exact.sigmoid_index(position), torch.float32)
    cdf[:, :, 0], cdf[:, :, -1] = 0.0, 1.0  # levels 0 and 255 take the tails
    bins = cdf[:, :, 1:] - cdf[:, :, :-1]
    pmf = weights[:, 0:1] * bins[:, 0]
    for k in range(1, mixtures):  # a fixed order of float operations: the same result everywhere
        pmf += weights[:, k : k + 1] * bins[:, k]
    return pmf.double()


def wavefront(sizes: list[tuple[int, int]], slope: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coding order of the pixels of tiles of `sizes` (h, w): arrays tile, row, col, and the
    offsets where each step t = col + slope * row begins (steps in order, then tiles, rows)."""
    tiles, rows, cols = [], [], []
    for i, (h, w) in enumerate(sizes):
        r, c = np.divmod(np.arange(h * w), w)
        tiles.append(np.full(h * w, i))
        rows.append(r)
        cols.append(c)
    tile, row, col = (np.concatenate(a) for a in (tiles, rows, cols))
    step = col + slope * row
    order = np.lexsort((row, tile, step))
    tile, row, col, step = tile[order], row[order], col[order], step[order]
    starts = np.searchsorted(step, np.arange(step.max() + 2))
    return tile, row, col, starts


@dataclass
class PixelCNNConfig:
    arch: dict
    stripe: int = DEFAULTS["stripe"]
    tile_width: int = DEFAULTS["tile_width"]
    group: int = DEFAULTS["group"]


@registry.family("pixelcnn", spec="neurocodec.families.pixelcnn.spec:PixelCNNSpec", config=PixelCNNConfig)
class PixelCNNCodec(LikelihoodCodec):
    """Parts are groups of up to `group` tiles; each group is one wavefront `Lockstep`."""
    parallel_parts = True  # a part's coding keeps no state on the codec

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest)
        self.net = CausalPixelModel(**config["arch"])
        self.net.load_state_dict({k: v.float() for k, v in weights.items()})
        self.net.eval()
        self.stripe = int(config.get("stripe", DEFAULTS["stripe"]))
        self.tile_width = int(config.get("tile_width", DEFAULTS["tile_width"]))
        self.group = int(config.get("group", DEFAULTS["group"]))

    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE

    def params(self, x, quality) -> dict:
        return {"stripe": self.stripe, "tile_width": self.tile_width, "group": self.group}

    def check_params(self, params: dict) -> dict:
        p = {k: limits.header_int(params, k, 1, MAX_GROUP if k == "group" else MAX_TILE_SIDE, self.name) for k in DEFAULTS}
        if p["stripe"] * p["tile_width"] * p["group"] > MAX_GROUP_PIXELS:
            raise FormatError(f"corrupted .ncd file: pixelcnn groups of {p['group']} tiles of {p['stripe']} x "
                              f"{p['tile_width']} pixels are over {MAX_GROUP_PIXELS:,} pixels")
        return p

    def plan(self, shape, p):
        tiles = [(slice(r, r + h), slice(c, c + w)) for r, c, h, w in tile_grid(shape[0], shape[1], p["stripe"], p["tile_width"])]
        return [tiles[i : i + p["group"]] for i in range(0, len(tiles), p["group"])]

    def count_parts(self, shape, p) -> int:
        tiles = -(-shape[0] // p["stripe"]) * -(-shape[1] // p["tile_width"])
        return -(-tiles // p["group"])

    def part_step(self, shapes, p) -> Lockstep:
        return Lockstep(lambda io, tiles: self._wavefront(io, [s[:2] for s in shapes], tiles), name="wavefront")

    def _wavefront(self, io, sizes: list[tuple[int, int]], tiles: list[np.ndarray] | None) -> list[np.ndarray]:
        """Code the tiles of a group along one wavefront: at each step, every pixel on it in
        every tile, channel by channel (R, then G given R, then B given both)."""
        net, rad = self.net, self.net.radius
        tile, row, col, starts = wavefront(sizes, rad + 1)
        hmax, wmax = max(h for h, _ in sizes), max(w for _, w in sizes)
        pixels = np.zeros((len(sizes), hmax, wmax, 3), dtype=np.int64)  # the symbols, known or decoded
        if tiles is not None:
            for i, t in enumerate(tiles):
                pixels[i, : t.shape[0], : t.shape[1]] = t
        # channels-last canvas of every tile, zero (= level 128) padded above and on both sides
        canvas = torch.zeros(len(sizes), hmax + rad, wmax + 2 * rad, 3, dtype=torch.float64)
        dy = torch.arange(rad + 1)[None, :, None]
        dx = torch.arange(2 * rad + 1)[None, None, :]
        for t in range(len(starts) - 1):
            a, b = starts[t], starts[t + 1]
            if a == b:
                continue
            T, R, C = (torch.from_numpy(v[a:b])[:, None, None] for v in (tile, row, col))
            patches = canvas[T, R + dy, C + dx].permute(0, 3, 1, 2)  # (N, 3, rad+1, 2rad+1)
            h = net.features(patches)
            pixel = torch.zeros(b - a, 3, 1, 1, dtype=torch.float64)
            for k in range(3):
                pmf = mixture_pmf(net.head(k, h, pixel)[:, :, 0, 0], net.mixtures)
                sym = io.code(Categorical(pmf.numpy()), pixels[tile[a:b], row[a:b], col[a:b], k])
                pixels[tile[a:b], row[a:b], col[a:b], k] = sym
                value = (torch.as_tensor(np.asarray(sym), dtype=torch.float64) - 128) * LEVEL
                pixel[:, k, 0, 0] = value
                canvas[T[:, 0, 0], R[:, 0, 0] + rad, C[:, 0, 0] + rad, k] = value
        return [pixels[i, :h, :w].astype(np.uint8) for i, (h, w) in enumerate(sizes)]
