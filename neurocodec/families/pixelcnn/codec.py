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
(bench/results/pixelcnn_stripes.md), so tiles are 1024 x 1024. Encoder and decoder run the
same loop (`_lockstep`), the encoder with the pixels known.

Determinism. The network runs in exact mode (neurocodec.exact), the logistic CDFs and mixture
weights come from fixed tables, and the only float operations left (products, differences
and the weighted sum, in a fixed order) are correctly rounded IEEE operations, so the
probability tables given to constriction are identical on every machine.
"""

from __future__ import annotations

import numpy as np
import torch

from ...codec import Codec, one_thread, tile_grid
from ...container import Header
from ...entropy import Categorical, RangeDecoder, RangeEncoder
from ...errors import FormatError
from ... import exact
from .net import LOG_SCALE_MIN, CausalPixelModel

LEVEL = 32.0  # one pixel level in exact-mode units: (x - 128) / 128 * 2**12
EDGES = (torch.arange(257, dtype=torch.float32) - 128) * LEVEL - LEVEL / 2  # lower edge of each level
DEFAULTS = {"stripe": 1024, "tile_width": 1024, "group": 4}


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


class PixelCNNCodec(Codec):
    modality = "image"
    lossless = True

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config, weights_digest)
        self.net = CausalPixelModel(**config["arch"])
        self.net.load_state_dict({k: v.float() for k, v in weights.items()})
        self.net.eval()
        self.stripe = int(config.get("stripe", DEFAULTS["stripe"]))
        self.tile_width = int(config.get("tile_width", DEFAULTS["tile_width"]))
        self.group = int(config.get("group", DEFAULTS["group"]))
        self.last_model_bits = 0.0  # -log2 p of the last image coded or decoded, for tests and benchmarks

    # --- layout ----------------------------------------------------------------------
    def _groups(self, height: int, width: int, p: dict) -> list[list[tuple[int, int, int, int]]]:
        tiles = tile_grid(height, width, p["stripe"], p["tile_width"])
        return [tiles[i : i + p["group"]] for i in range(0, len(tiles), p["group"])]

    # --- coding ----------------------------------------------------------------------
    def encode_chunks(self, x: np.ndarray, quality) -> tuple[dict, list[bytes]]:
        params = {"stripe": self.stripe, "tile_width": self.tile_width, "group": self.group}
        chunks, self.last_model_bits = [], 0.0
        for group in self._groups(x.shape[0], x.shape[1], params):
            enc = RangeEncoder()

            def code(k, pmf, rows, cols, enc=enc):
                sym = x[rows, cols, k].astype(np.int64)
                enc.encode(sym, Categorical(pmf.numpy()))
                return sym

            self._lockstep(group, code)
            chunks.append(enc.to_bytes())
        return params, chunks

    def decode_chunks(self, header: Header, chunks: list[bytes]) -> np.ndarray:
        height, width, _ = header.shape
        try:
            params = {k: int(header.params[k]) for k in DEFAULTS}
        except (KeyError, TypeError, ValueError):
            raise FormatError("pixelcnn file lacks its tiling parameters") from None
        if min(params.values()) < 1:
            raise FormatError("pixelcnn file has invalid tiling parameters")
        groups = self._groups(height, width, params)
        if len(chunks) != len(groups):
            raise FormatError(f"pixelcnn file has {len(chunks)} groups, the image needs {len(groups)}")
        out = np.zeros((height, width, 3), dtype=np.uint8)
        self.last_model_bits = 0.0
        for group, data in zip(groups, chunks):
            dec = RangeDecoder(data)

            def code(k, pmf, rows, cols, dec=dec):
                sym = dec.decode(Categorical(pmf.numpy()))
                out[rows, cols, k] = sym
                return sym

            self._lockstep(group, code)
        return out

    def _lockstep(self, group: list[tuple[int, int, int, int]], code) -> None:
        """Run the wavefront over the tiles of `group`; `code(k, pmf, rows, cols)` codes
        channel k of the pixels at those image coordinates and returns their values."""
        net, rad = self.net, self.net.radius
        sizes = [(h, w) for _, _, h, w in group]
        tile, row, col, starts = wavefront(sizes, rad + 1)
        hmax, wmax = max(h for h, _ in sizes), max(w for _, w in sizes)
        top = np.array([r for r, _, _, _ in group])[tile] + row  # image coordinates of each pixel
        left = np.array([c for _, c, _, _ in group])[tile] + col
        # channels-last canvas of every tile, zero (= level 128) padded above and on both sides
        canvas = torch.zeros(len(group), hmax + rad, wmax + 2 * rad, 3, dtype=torch.float64)
        dy = torch.arange(rad + 1)[None, :, None]
        dx = torch.arange(2 * rad + 1)[None, None, :]
        with torch.no_grad(), exact.exact_mode(), one_thread():
            for t in range(len(starts) - 1):
                a, b = starts[t], starts[t + 1]
                if a == b:
                    continue
                T, R, C = (torch.from_numpy(v[a:b])[:, None, None] for v in (tile, row, col))
                patches = canvas[T, R + dy, C + dx].permute(0, 3, 1, 2)  # (N, 3, rad+1, 2rad+1)
                h = net.features(patches)
                pixel = torch.zeros(b - a, 3, 1, 1, dtype=torch.float64)
                for k in range(3):
                    p = net.head(k, h, pixel)[:, :, 0, 0]
                    pmf = mixture_pmf(p, net.mixtures)
                    sym = torch.as_tensor(np.asarray(code(k, pmf, top[a:b], left[a:b])), dtype=torch.long)
                    self.last_model_bits -= float(torch.log2(pmf.gather(1, sym[:, None]) / pmf.sum(1, keepdim=True)).sum())
                    value = (sym.double() - 128) * LEVEL
                    pixel[:, k, 0, 0] = value
                    canvas[T[:, 0, 0], R[:, 0, 0] + rad, C[:, 0, 0] + rad, k] = value
