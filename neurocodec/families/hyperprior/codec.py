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

import math

import numpy as np
import torch
import torch.nn.functional as F

from ... import exact, limits, registry
from ...compose import Decoder, LikelihoodCodec, Lockstep
from ...entropy import Categorical, DiscretizedGaussian
from ...errors import FormatError
from .net import LAMBDAS, VariableRateHyperprior

ACT_BITS, WEIGHT_BITS = exact.ACT_BITS, exact.WEIGHT_BITS  # h_s runs in neurocodec.exact
SCALE_BOUND = 0.11  # compressai's lower bound on a Gaussian scale
Z_HALF_RANGE = 63  # z symbols are coded in [-63, 63] around each channel's median
Y_HALF_RANGE = 2047  # y residuals are clamped to [-2047, 2047]
GAIN_GRID = 2.0**16
# The largest tile a file may ask for: the synthesis runs on a whole tile at once (measured,
# xxx); the shipped tiles are 1024 x 1024, a file may ask for up to 2048 x 2048. Before, a tile
# of any size was taken (16384 x 16384: a MemoryError).
MAX_TILE = 2048
# The most pixels a tile may hold per byte of its chunk (LikelihoodCodec.samples_per_chunk_byte).
# Measured (fuzz/measure_bounds.py) at quality 1, a flat grey image is the most compressible:
# one byte per 496 pixels at 256 x 256, 360-368 in tiles of 1024 and 2048 (white: 86-137);
# 2**12 leaves a margin of 8. The symbols digest catches garbage only at the end, after about
# 1 us a pixel: at most 4 ms of work a byte.
PIXELS_PER_CHUNK_BYTE = 1 << 12


# --- the integer hyper synthesis -------------------------------------------------------


def quantize_hyper_synthesis(h_s: torch.nn.Sequential) -> dict[str, torch.Tensor]:
    """Integer weights (int32) and biases (int64) of the float h_s, as the weights file keeps them."""
    out = {}
    for i, layer in enumerate(h_s):
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            w = layer.weight.detach().double()
            b = layer.bias.detach().double()
            out[f"h_s.{i}.weight_q"] = torch.round(w * 2**WEIGHT_BITS).to(torch.int32)
            out[f"h_s.{i}.bias_q"] = torch.round(b * 2 ** (WEIGHT_BITS + ACT_BITS)).to(torch.int64)
    return out


def dequantize_hyper_synthesis(q: dict[str, torch.Tensor], dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The float h_s state that the integer one stands for (float64: exactly)."""
    out = {}
    for k, v in q.items():
        if k.endswith(".weight_q"):
            out[k[: -len("_q")]] = v.double().div(2**WEIGHT_BITS).to(dtype)
        elif k.endswith(".bias_q"):
            out[k[: -len("_q")]] = v.double().div(2 ** (WEIGHT_BITS + ACT_BITS)).to(dtype)
    return out


def exact_hyper_synthesis(q: dict[str, torch.Tensor], template: torch.nn.Sequential) -> torch.nn.Module:
    """compressai's mean-scale h_s (deconv, leaky, deconv, leaky, conv) as an exact network
    whose integer weights are the stored ones: float64 parameters that round back to them
    exactly, unclamped as it was trained, every accumulator checked (`exact.from_torch`)."""
    h_s = exact.from_torch(template, clamp=False).double()
    h_s.load_state_dict({k[len("h_s."):]: v for k, v in dequantize_hyper_synthesis(q, torch.float64).items()})
    return h_s.eval()


# --- the codec --------------------------------------------------------------------------


@dataclass
class HyperpriorConfig:
    N: int
    M: int
    levels: int
    tile: int = 1024
    default_quality: int = 50
    bench_qualities: list = field(default_factory=list)


@registry.family("hyperprior", spec="neurocodec.families.hyperprior.spec:HyperpriorSpec", config=HyperpriorConfig)
class HyperpriorCodec(LikelihoodCodec):
    """Parts are tiles, each one `Lockstep`: z, then y given z."""

    exact = False  # g_a and g_s run in float on all threads; h_s is integer by construction
    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, lossless=False)
        self.default_quality = int(config.get("default_quality", 50))
        self.bench_qualities = tuple(config.get("bench_qualities", ()))
        self.tile = int(config.get("tile", 1024))
        self.net = VariableRateHyperprior(N=config["N"], M=config["M"], levels=config["levels"])
        self.net.load_learned(float_state(weights))
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
    def gains(self, quality: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain for a quality 1..100, rounded to a 2**-16 grid."""
        level = (quality - 1) / 99 * (self.net.levels - 1)
        lo = min(int(math.floor(level)), self.net.levels - 2)
        a = level - lo

        def interp(table):
            g = np.exp((1 - a) * table[lo] + a * table[lo + 1])
            return torch.from_numpy(np.round(g * GAIN_GRID) / GAIN_GRID)[None, :, None, None]

        return interp(self.log_gain), interp(self.log_inv_gain)

    def gaussian_params(self, z_sym: torch.Tensor, gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact (mu, sigma) of the gained latents from the integer z symbols."""
        a = z_sym.double() * 2**ACT_BITS + self.z_median_q[None, :, None, None]
        with torch.no_grad(), exact.exact_mode():
            scales_q, means_q = self.h_s(a).chunk(2, 1)
        mu = means_q / 2**ACT_BITS * gain
        sigma = torch.clamp(scales_q / 2**ACT_BITS * gain, min=SCALE_BOUND)
        return mu, sigma

    def _z_dists(self) -> list[Categorical]:
        return [Categorical(p, lo=-Z_HALF_RANGE) for p in self.z_pmf]

    def _y_dist(self, mu: torch.Tensor, sigma: torch.Tensor) -> DiscretizedGaussian:
        return DiscretizedGaussian(np.zeros(mu.numel()), sigma.numpy().ravel(), -Y_HALF_RANGE, Y_HALF_RANGE)

    # --- one tile ------------------------------------------------------------------------
    def params(self, x, quality: int) -> dict:
        return {"quality": quality, "tile": self.tile}

    def check_params(self, params: dict) -> dict:
        limits.header_int(params, "quality", 1, 100, self.name)
        if limits.header_int(params, "tile", 64, MAX_TILE, self.name) % 64:
            raise FormatError(f"corrupted .ncd file: hyperprior tiles must be a multiple of 64, not {params['tile']}")
        return params

    def part_step(self, shapes, params) -> Lockstep:
        gain, inv_gain = self.gains(params["quality"])
        h, w = shapes[0][:2]
        return Lockstep(lambda io, tiles: self._tile(io, gain, inv_gain, h, w, tiles), name="tile")

    def _tile(self, io, gain, inv_gain, h: int, w: int, tiles) -> list[np.ndarray]:
        known = None if io.decoding else self.analyse(tiles[0])
        _, y_sym, mu = self._latents(io, gain, h, w, known)
        return [self.synthesize(y_sym, mu, inv_gain, h, w)] if io.decoding else tiles

    def _latents(self, io, gain, h: int, w: int, known=None) -> tuple[torch.Tensor, ...]:
        """z (one categorical table per channel), then y under the Gaussians z gives; the
        encoder knows z's symbols and y (`known`), the decoder reads both."""
        hz, wz = -(-h // 64), -(-w // 64)
        z_sym = np.stack([
            np.asarray(io.code(d, None if known is None else known[0][c].ravel(), n=hz * wz)).reshape(hz, wz)
            for c, d in enumerate(self._z_dists())
        ])
        z_sym = torch.from_numpy(z_sym.astype(np.int64))[None].double()
        mu, sigma = self.gaussian_params(z_sym, gain)
        y_known = None if known is None else torch.round(known[1] * gain - mu).clamp(-Y_HALF_RANGE, Y_HALF_RANGE)
        y_sym = io.code(self._y_dist(mu, sigma), None if y_known is None else y_known.numpy().astype(np.int64).ravel())
        return z_sym, torch.from_numpy(np.asarray(y_sym, dtype=np.int64).reshape(mu.shape)).double(), mu

    @torch.no_grad()
    def analyse(self, x: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """The z symbols and the latent y (float64) of a tile: what only the encoder has."""
        h, w = x.shape[:2]
        t = torch.tensor(x, device=self.device).permute(2, 0, 1)[None].float() / 255.0
        t = F.pad(t, (0, -w % 64, 0, -h % 64), mode="replicate")
        y = self.net.g_a(t.contiguous(memory_format=torch.channels_last))
        z = self.net.h_a(y).cpu()
        medians = self.z_median_q[None, :, None, None] / 2**ACT_BITS
        z_sym = torch.round(z.double() - medians).clamp(-Z_HALF_RANGE, Z_HALF_RANGE)
        return z_sym[0].numpy().astype(np.int64), y.cpu().double()

    @torch.no_grad()
    def synthesize(self, y_sym: torch.Tensor, mu: torch.Tensor, inv_gain: torch.Tensor, h: int, w: int) -> np.ndarray:
        y_hat = ((y_sym + mu) * inv_gain).float().to(self.device)
        x_hat = self.net.g_s(y_hat.contiguous(memory_format=torch.channels_last))[0, :, :h, :w]
        return (x_hat.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()

    def decode_latents(self, data: bytes, h: int, w: int, gain: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tile's z and y symbols, exactly as the encoder had them, and mu."""
        return Lockstep(lambda io, _: self._latents(io, gain, h, w), name="tile").pop(Decoder(data))


# --- weights: training state <-> shipped state ------------------------------------------


def float_state(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 network state held in a shipped weights file (h_s dequantized)."""
    state = {k: v.float() for k, v in weights.items() if k.split(".")[0] in ("g_a", "g_s", "h_a", "entropy_bottleneck")}
    state.update(dequantize_hyper_synthesis({k: v for k, v in weights.items() if k.startswith("h_s.")}))
    state["log_gain"] = weights["log_gain"].float()
    state["log_inv_gain"] = weights["log_inv_gain"].float()
    return state


@torch.no_grad()
def export_weights(net: VariableRateHyperprior) -> dict[str, torch.Tensor]:
    """Shipped weights from a trained network: float16 convolutions, float32 GDN and
    entropy-bottleneck parameters, the integer h_s and the z probability tables."""
    out = {}
    for k, v in net.state_dict().items():
        top = k.split(".")[0]
        if top in ("g_a", "g_s", "h_a"):
            half = v.dim() == 4  # conv kernels; GDN's reparametrized beta/gamma stay float32
            out[k] = v.half() if half else v.float()
        elif top == "entropy_bottleneck" and "._" not in k and not k.startswith("entropy_bottleneck._"):
            out[k] = v.float()
    out.update(quantize_hyper_synthesis(net.h_s))
    eb = net.entropy_bottleneck
    medians = eb._get_medians().detach().double().squeeze()  # (N,)
    median_q = torch.round(medians * 2**ACT_BITS)
    grid = torch.arange(-Z_HALF_RANGE, Z_HALF_RANGE + 1, dtype=torch.double)
    values = (median_q[:, None] / 2**ACT_BITS + grid[None, :]).float()[:, None, :]
    pmf, _, _ = eb._likelihood(values)
    out["z_pmf"] = pmf[:, 0, :].float().clamp_min(0).contiguous()
    out["z_median_q"] = median_q.to(torch.int64)
    out["log_gain"] = net.log_gain.detach().float()
    out["log_inv_gain"] = net.log_inv_gain.detach().float()
    return {k: v.contiguous() for k, v in out.items()}


def default_config(name: str, net: VariableRateHyperprior) -> dict:
    return {
        "name": name,
        "family": "hyperprior",
        "modality": "image",
        "lossless": False,
        "N": net.N,
        "M": net.M,
        "levels": net.levels,
        "lambdas": list(LAMBDAS[: net.levels]),
        "tile": 1024,
        "default_quality": 50,
        "bench_qualities": [1, 12, 25, 38, 50, 62, 75, 88, 100],
    }
