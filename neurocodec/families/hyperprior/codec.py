"""`hyperprior`: lossy image codec from a variable-rate mean-scale hyperprior.

Coding a tile (at most `tile` x `tile` pixels, padded to a multiple of 64):

    x --g_a--> y --h_a--> z --round--> z_sym  (coded with a per-channel categorical table)
                                         |
                          integer h_s <--+--> (mu, sigma) of every latent
    y * gain --round(. - mu)--> y_sym     (coded with DiscretizedGaussian(0, sigma))
    x_hat = g_s((y_sym + mu) * inv_gain)

Determinism. The decoder must rebuild exactly the (mu, sigma) the encoder used. Float
convolutions sum in an order that depends on the thread count and the device, so the hyper
synthesis h_s runs in neurocodec's exact runtime (`neurocodec.exact`): weights and
activations are integers (fixed point, 16 and 12 fractional bits) held in float64, where every
partial sum stays below 2**53 and is therefore exact in any order. The z tables are stored in the weights file,
and gains are rounded to a 2**-16 grid. Only g_s runs in ordinary float arithmetic, so a
reconstructed pixel may differ by one level between machines or thread counts; the latents,
and so the file, never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ... import exact, limits, registry
from ...codec import tile_grid
from ...compose import Decoder, LikelihoodCodec, Lockstep
from ...entropy import Categorical, DiscretizedGaussian
from ...errors import FormatError
from .net import LAMBDAS, VariableRateHyperprior, bracket
from .search import search
from .weights import ACT_BITS, Z_HALF_RANGE, exact_hyper_synthesis, float_state

SCALE_BOUND = 0.11  # compressai's lower bound on a Gaussian scale
Y_HALF_RANGE = 2047  # y residuals are clamped to [-2047, 2047]
GAIN_GRID = 2.0**16
# the lowest rate level a config may map -q 1 to: three levels (lambda / 8) below the lowest
# trained one, gains extrapolated; context's level -2 codes 4 Kodak images at 0.071 bpp
# (level 0: 0.157), PSNR falling smoothly (23.8 -> 21.7 dB)
MIN_LEVEL = -3.0
EFFORT_STEPS = {1: 25, 2: 100, 3: 400, 4: 1600}  # encoder-side search steps per tile, by effort
OVERLAP = 128  # pixels of its neighbours a tile's analysis and synthesis see (a multiple of 16)
# The largest tile a file may ask for: the synthesis runs on a whole tile at once; the shipped tiles are 1024 x 1024, a file may ask for up to 2048 x 2048. Before, a tile
# of any size was taken (16384 x 16384: a MemoryError).
MAX_TILE = 2048
# The most pixels a tile may hold per byte of its chunk (LikelihoodCodec.samples_per_chunk_byte).
# Measured (fuzz/measure_bounds.py) at quality 1, a flat grey image is the most compressible:
# one byte per 496 pixels at 256 x 256, 360-368 in tiles of 1024 and 2048 (white: 86-137);
# 2**12 leaves a margin of 8. A codec whose -q 1 is below level 0 (`bottom_level`) goes
# further: perceptual's latents at level -2.5 or -3, one byte per 1,040 pixels of a flat grey
# 1024 tile, a margin of 3.9. The symbols digest catches garbage only at the end, after about
# 1 us a pixel: at most 4 ms of work a byte.
PIXELS_PER_CHUNK_BYTE = 1 << 12


# --- the codec --------------------------------------------------------------------------


@dataclass
class HyperpriorConfig:
    N: int
    M: int
    levels: int
    tile: int = 1024
    default_quality: int = 50
    bench_qualities: list = field(default_factory=list)
    width: int | None = None  # channels inside g_a and g_s (default: N)
    top_level: float | None = None  # the rate level q = 100 stands for (default: the highest)
    bottom_level: float = 0.0  # the rate level q = 1 stands for: below 0, gains extrapolated

    def __post_init__(self):
        top, bottom = self.top_level, self.bottom_level
        if top is not None and not (isinstance(top, (int, float)) and not isinstance(top, bool) and 0 < top <= self.levels - 1):
            raise ValueError(f"top_level {top!r} is not a level in (0, {self.levels - 1}]")
        if not (isinstance(bottom, (int, float)) and not isinstance(bottom, bool) and MIN_LEVEL <= bottom <= 0):
            raise ValueError(f"bottom_level {bottom!r} is not a level in [{MIN_LEVEL}, 0]")


@registry.family("hyperprior", spec="neurocodec.families.hyperprior.spec:HyperpriorSpec", config=HyperpriorConfig)
class HyperpriorCodec(LikelihoodCodec):
    """Parts are tiles, each one `Lockstep`: z, then y given z."""

    exact = False  # g_a and g_s run in float on all threads; h_s is integer by construction
    part_threads = None  # a tile is a few large convolutions, where torch's threads pay
    network = VariableRateHyperprior
    efforts = (0, *EFFORT_STEPS)
    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, lossless=False)
        self.default_quality = int(config.get("default_quality", 50))
        self.bench_qualities = tuple(config.get("bench_qualities", ()))
        self.tile = int(config.get("tile", 1024))
        top = config.get("top_level")
        self.top_level = float(config["levels"] - 1 if top is None else top)
        self.bottom_level = float(config.get("bottom_level", 0.0))
        self.net = self.network(N=config["N"], M=config["M"], levels=config["levels"], likelihoods=False,
                                width=config.get("width"))
        self.net.load_learned(float_state(weights))
        self._entropy_state = {k: v.float() for k, v in weights.items() if k.startswith("entropy_bottleneck.")}
        # channels-last convolutions decode ~30 % faster on the CPU (measured); they change
        # only float rounding in g_a/g_s, never what feeds the entropy coder
        self.net.eval().to(memory_format=torch.channels_last)
        self.h_s = exact_hyper_synthesis({k: v for k, v in weights.items() if k.startswith("h_s.")}, self.net.h_s)
        self.z_pmf = weights["z_pmf"].double().numpy()
        self.z_median_q = weights["z_median_q"].double()
        self.log_gain = weights["log_gain"].double().numpy()
        self.log_inv_gain = weights["log_inv_gain"].double().numpy()
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "HyperpriorCodec":
        """Run the analysis and synthesis transforms on `device` (e.g. "cuda"). The integer
        hyper synthesis and the entropy coder stay on the CPU, so files do not depend on it."""
        self.device = torch.device(device)
        self.net.to(self.device, memory_format=torch.channels_last)
        return self

    # parameters shared by encoder and decoder ------------------------------------------
    def level(self, quality: int) -> float:
        """The network's rate level for a quality 1..100: `bottom_level` (0 unless set)
        .. `top_level` (a codec whose decoder was trained for the lowest rates only, as
        `perceptual`, spreads -q over those)."""
        return self.bottom_level + (quality - 1) / 99 * (self.top_level - self.bottom_level)

    def gains(self, quality: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain for a quality 1..100, rounded to a 2**-16 grid (below level
        0, the log-gains of levels 0 and 1 extrapolated)."""
        lo, a = bracket(self.level(quality), self.net.levels)

        def interp(table):
            g = np.exp((1 - a) * table[lo] + a * table[lo + 1])
            return torch.from_numpy(np.round(g * GAIN_GRID) / GAIN_GRID)[None, :, None, None]

        return interp(self.log_gain), interp(self.log_inv_gain)

    def hyper(self, z_sym: torch.Tensor) -> torch.Tensor:
        """h_s's exact output (scales, then means; fixed point) from the integer z symbols."""
        a = z_sym.double() * 2**ACT_BITS + self.z_median_q[None, :, None, None]
        with torch.no_grad(), exact.exact_mode():
            return self.h_s(a)

    @staticmethod
    def latent_params(hyper: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact (mu, sigma) of the gained latents from fixed-point (scales, means)."""
        scales_q, means_q = hyper.chunk(2, 1)
        mu = means_q / 2**ACT_BITS * gain
        sigma = torch.clamp(scales_q / 2**ACT_BITS * gain, min=SCALE_BOUND)
        return mu, sigma

    def gaussian_params(self, z_sym: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact (mu, sigma) of the gained latents from the integer z symbols."""
        return self.latent_params(self.hyper(z_sym), gain)

    def _z_dists(self) -> list[Categorical]:
        return [Categorical(p, lo=-Z_HALF_RANGE) for p in self.z_pmf]

    def _y_dist(self, mu: torch.Tensor, sigma: torch.Tensor) -> DiscretizedGaussian:
        return DiscretizedGaussian(np.zeros(mu.numel()), sigma.numpy().ravel(), -Y_HALF_RANGE, Y_HALF_RANGE)

    # --- one tile ------------------------------------------------------------------------
    def params(self, x, quality: int) -> dict:
        """An image larger than one tile is analysed and synthesized in overlapping windows
        (`overlap` pixels of the neighbours on each side), so no tile border shows."""
        seamless = x.shape[0] > self.tile or x.shape[1] > self.tile
        return {"quality": quality, "tile": self.tile, **({"overlap": OVERLAP} if seamless else {})}

    def check_params(self, params: dict) -> dict:
        limits.header_int(params, "quality", 1, 100, self.name)
        if limits.header_int(params, "tile", 64, MAX_TILE, self.name) % 64:
            raise FormatError(f"corrupted .ncd file: hyperprior tiles must be a multiple of 64, not {params['tile']}")
        return params

    def part_step(self, shapes, params) -> Lockstep:
        self._quality = params["quality"]
        gain, inv_gain = self.gains(params["quality"])
        h, w = shapes[0][:2]
        return Lockstep(lambda io, tiles: self._tile(io, gain, inv_gain, h, w, tiles), name="tile")

    def _tile(self, io, gain, inv_gain, h: int, w: int, tiles) -> list[np.ndarray]:
        window = None if io.decoding or self._source is None else next(self._regions)[0]
        known = None if io.decoding else self.analyse(tiles[0], self._quality, window)
        _, y_sym, mu = self._latents(io, gain, inv_gain, h, w, known)
        if not io.decoding:
            return tiles
        if self._latent_tiles is not None:  # seamless: synthesized with its neighbours later
            self._latent_tiles.append(((y_sym + mu) * inv_gain).float())
            return [np.zeros((h, w, 3), np.uint8)]
        return [self.synthesize(y_sym, mu, inv_gain, h, w)]

    # --- images larger than a tile: overlapping analysis and synthesis ------------------
    _source = _regions = _latent_tiles = None  # set only while a seamless image is coded

    def encode_chunks(self, x, quality, effort: int = 0):
        params = self.params(np.asarray(x), quality)
        if "overlap" in params:
            self._source, self._regions = np.asarray(x), iter(self.plan(np.shape(x), params))
        try:
            return super().encode_chunks(x, quality, effort)
        finally:
            self._source = self._regions = None

    def decode_chunks(self, header, chunks):
        overlap = header.params.get("overlap")
        if overlap is None:  # files of one tile, and files written before seamless tiling
            return super().decode_chunks(header, chunks)
        if not (isinstance(overlap, int) and not isinstance(overlap, bool) and 0 < overlap <= 256 and overlap % 16 == 0):
            raise FormatError("corrupted .ncd file: invalid hyperprior overlap")
        self._latent_tiles = []
        try:
            super().decode_chunks(header, chunks)  # decodes and checks every tile's latents
            return self._synthesize_all(header.shape, header.params["tile"], overlap, self._latent_tiles)
        finally:
            self._latent_tiles = None

    @torch.no_grad()
    def _synthesize_all(self, shape, tile: int, overlap: int, latents: list[torch.Tensor]) -> np.ndarray:
        """The image from every tile's latents: each tile synthesized from a window of the whole
        latent reaching `overlap` pixels into its neighbours, then cropped to the tile."""
        height, width = shape[0], shape[1]
        grid = tile_grid(height, width, tile)
        y = torch.zeros(1, latents[0].shape[1], -(-height // 64) * 4 + tile // 16, -(-width // 64) * 4 + tile // 16)
        for (r, c, _, _), lat in zip(grid, latents):
            y[:, :, r // 16 : r // 16 + lat.shape[2], c // 16 : c // 16 + lat.shape[3]] = lat
        # every tile's latents, those of its padding to a multiple of 64 included: the image's
        # last rows and columns are synthesized from them as a tile alone would be (cut at the
        # image's edge, g_s padded with zeros there and the last 4 rows decoded at 23 dB)
        y = y[:, :, : -(-height // 64) * 4, : -(-width // 64) * 4]
        out = np.empty((height, width, 3), dtype=np.uint8)
        m = overlap // 16
        for r, c, th, tw in grid:
            r0, c0 = max(0, r // 16 - m), max(0, c // 16 - m)
            window = y[:, :, r0 : (r + th) // 16 + m + 1, c0 : (c + tw) // 16 + m + 1].to(self.device)
            x_hat = self.net.g_s(window.contiguous(memory_format=torch.channels_last))[0]
            x_hat = x_hat[:, r - 16 * r0 : r - 16 * r0 + th, c - 16 * c0 : c - 16 * c0 + tw]
            out[r : r + th, c : c + tw] = (x_hat.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return out

    def _code_z(self, io, h: int, w: int, known) -> torch.Tensor:
        """z, one categorical table per channel."""
        hz, wz = -(-h // 64), -(-w // 64)
        z_sym = np.stack([
            np.asarray(io.code(d, None if known is None else known[0][c].ravel(), n=hz * wz)).reshape(hz, wz)
            for c, d in enumerate(self._z_dists())
        ])
        return torch.from_numpy(z_sym.astype(np.int64))[None].double()

    def _code_y(self, io, mu, sigma, known, where: torch.Tensor | None = None) -> torch.Tensor:
        """y's symbols (at the positions `where`, all if None) under Gaussians (mu, sigma)."""
        sel = (lambda t: t) if where is None else (lambda t: t[where])
        y_known = None if known is None else sel(torch.round(known[1] * self._gain - mu).clamp(-Y_HALF_RANGE, Y_HALF_RANGE))
        y_sym = io.code(self._y_dist(sel(mu), sel(sigma)), None if y_known is None else y_known.numpy().astype(np.int64).ravel())
        return torch.from_numpy(np.asarray(y_sym, dtype=np.int64)).double()

    def _latents(self, io, gain, inv_gain, h: int, w: int, known=None) -> tuple[torch.Tensor, ...]:
        """z, then y under the Gaussians z gives; the encoder knows z's symbols and y
        (`known`), the decoder reads both. Returns z's and y's symbols, and y's means."""
        z_sym = self._code_z(io, h, w, known)
        mu, sigma = self.gaussian_params(z_sym, gain)
        self._gain = gain
        return z_sym, self._code_y(io, mu, sigma, known).reshape(mu.shape), mu

    def _pixels(self, x: np.ndarray) -> torch.Tensor:
        """(1, 3, H, W) floats in [0, 1], replicate-padded to a multiple of 64."""
        h, w = x.shape[:2]
        t = torch.tensor(np.ascontiguousarray(x), device=self.device).permute(2, 0, 1)[None].float() / 255.0
        return F.pad(t, (0, -w % 64, 0, -h % 64), mode="replicate")

    @torch.no_grad()
    def analyse(self, x: np.ndarray, quality: int | None = None, window=None) -> tuple[np.ndarray, torch.Tensor]:
        """The z symbols and the latent y (float64) of a tile: what only the encoder has.
        `window` (the tile's slices in `self._source`): y is cut from the analysis of the tile
        with `OVERLAP` pixels of its neighbours around it. With an effort above 0 the latents
        are optimized for this tile first (`search`)."""
        h, w = x.shape[:2]
        t = self._pixels(x)
        if window is None:
            y = self.net.g_a(t.contiguous(memory_format=torch.channels_last))
        else:
            (rows, cols), src = window, self._source
            r0, c0 = max(0, rows.start - OVERLAP), max(0, cols.start - OVERLAP)
            around = self._pixels(src[r0 : rows.stop + OVERLAP, c0 : cols.stop + OVERLAP])
            y = self.net.g_a(around.contiguous(memory_format=torch.channels_last))
            top, left = (rows.start - r0) // 16, (cols.start - c0) // 16
            y = y[:, :, top : top + t.shape[2] // 16, left : left + t.shape[3] // 16]
            if y.shape[2:] != (t.shape[2] // 16, t.shape[3] // 16):  # a last tile: pad as the tile alone would be
                y = F.pad(y, (0, t.shape[3] // 16 - y.shape[3], 0, t.shape[2] // 16 - y.shape[2]), mode="replicate")
        z = self.net.h_a(y)
        if self.effort and quality is not None:
            y, z = search(self, t, y, z, quality, EFFORT_STEPS[self.effort], (h, w))
        z = z.cpu()
        medians = self.z_median_q[None, :, None, None] / 2**ACT_BITS
        z_sym = torch.round(z.double() - medians).clamp(-Z_HALF_RANGE, Z_HALF_RANGE)
        return z_sym[0].numpy().astype(np.int64), y.cpu().double()

    @torch.no_grad()
    def synthesize(self, y_sym: torch.Tensor, mu: torch.Tensor, inv_gain: torch.Tensor, h: int, w: int) -> np.ndarray:
        y_hat = ((y_sym + mu) * inv_gain).float().to(self.device)
        x_hat = self.net.g_s(y_hat.contiguous(memory_format=torch.channels_last))[0, :, :h, :w]
        return (x_hat.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()

    def decode_latents(self, data: bytes, h: int, w: int, quality: int) -> tuple[torch.Tensor, ...]:
        """The tile's z and y symbols, exactly as the encoder had them, and mu."""
        gain, inv_gain = self.gains(quality)
        return Lockstep(lambda io, _: self._latents(io, gain, inv_gain, h, w), name="tile").pop(Decoder(data))


def default_config(name: str, net: VariableRateHyperprior) -> dict:
    return {
        "name": name,
        "family": "hyperprior",
        "modality": "image",
        "lossless": False,
        "N": net.N,
        "M": net.M,
        "levels": net.levels,
        **({"width": net.width} if net.width != net.N else {}),
        "lambdas": list(LAMBDAS[: net.levels]),
        "tile": 1024,
        "default_quality": 50,
        "bench_qualities": [1, 12, 25, 38, 50, 62, 75, 88, 100],
    }
