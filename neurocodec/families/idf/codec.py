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

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ... import exact
from ... import limits, registry
from ...compose import LikelihoodCodec, Step
from ...entropy import Categorical, DiscretizedLaplace
from ...entropy.calibration import ScaleCalibration, normalized_error, scale_bins, scale_level
from ...errors import FormatError
from .net import IDF, LOG_SCALE_RANGE

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
BANDS = 16  # a calibrated part is coded in up to this many bands of rows


class Calibration(ScaleCalibration):
    """`idf`'s contexts for the online scale calibration (`entropy.calibration`), over one tile:

        context = (the part, its predicted scale in half-octaves)

    A part's prior depends only on the parts before it, so a part can be coded in bands of
    rows, each band's scales calibrated by everything coded before it in the tile. The
    network is overconfident by a factor that differs by part and by image (the best single
    factor per part: 1.05-1.65 on Kodak, 0.6-0.7 for the first part of kodim15 and 23).
    Measured in a float simulation with the weights a98b1fadee6f on six Kodak images: 3.2235
    bpsp without, 3.1915 with 16 bands (8 bands: 3.1950); contexts by the errors of the part
    before at the same place added nothing (the network sees that part already)."""

    SCALE_BINS = scale_bins(LOG_SCALE_RANGE)

    def __init__(self, parts: int):
        super().__init__(parts * self.SCALE_BINS, floor=LOG_SCALE_RANGE[0])


class Residuals(Step):
    """One part of the latents: residuals r = z - round(mean) under the Laplace prior, then
    the escaped magnitudes as two uniform digits each. With a `calibration`, in bands of rows,
    each under scales calibrated by what was coded before it."""

    name = "part"

    def __init__(self, mu: torch.Tensor, log_scale: torch.Tensor, scale_factor: float,
                 calibration: Calibration | None = None, part: int = 0):
        self.mu, self.centre = mu, torch.floor(mu + 0.5)
        self.scale = exact.fixed_exp(log_scale * exact.ONE) * scale_factor
        self.calibration = calibration
        rows = mu.shape[-2]
        if calibration is None:
            self.bands = [slice(0, rows)]
        else:
            self.contexts = part * Calibration.SCALE_BINS + scale_level(log_scale * exact.ONE, LOG_SCALE_RANGE[0])
            step = -(-rows // BANDS)
            self.bands = [slice(a, min(a + step, rows)) for a in range(0, rows, step)]

    def _dist(self, band: slice) -> DiscretizedLaplace:
        scale = self.scale[..., band, :]
        if self.calibration is not None:
            scale = self.calibration.scale(self.contexts[..., band, :], scale)
        return DiscretizedLaplace((self.mu - self.centre)[..., band, :].numpy(), scale.numpy(), -R, R)

    def _coded(self, band: slice, z: torch.Tensor) -> None:
        if self.calibration is not None:
            u = normalized_error(z * exact.ONE, self.mu[..., band, :] * exact.ONE, self.scale[..., band, :])
            self.calibration.update(self.contexts[..., band, :], u)

    def push(self, stream, z: torch.Tensor) -> None:
        for band in self.bands:
            r = (z[..., band, :] - self.centre[..., band, :]).numpy().ravel().astype(np.int64)
            stream.push(np.clip(r, -R, R), self._dist(band))
            esc = np.abs(r[np.abs(r) >= R]) - R
            # cannot happen: |translation| <= 1024 * 128 per coupling, so |latent| < 2**21
            if esc.size and esc.max() >= DIGIT**2:
                raise OverflowError("latent out of the escape range")
            stream.push(esc // DIGIT, UNIFORM)
            stream.push(esc % DIGIT, UNIFORM)
            self._coded(band, z[..., band, :])

    def pop(self, stream) -> torch.Tensor:
        z = torch.empty_like(self.centre)
        for band in self.bands:
            r = stream.pop(self._dist(band))
            esc = np.abs(r) == R
            n = int(esc.sum())
            if n:
                mag = R + stream.pop(UNIFORM, n) * DIGIT + stream.pop(UNIFORM, n)
                r[esc] = np.sign(r[esc]) * mag
            centre = self.centre[..., band, :]
            z[..., band, :] = torch.from_numpy(r.astype(np.float64)).reshape(centre.shape) + centre
            self._coded(band, z[..., band, :])
        return z


class FlowTile(Step):
    """A tile through the flow: the encoder codes the latent parts the forward flow gives, in
    order; the decoder inverts the flow, which asks for each part given those before it."""

    name = "flow"

    def __init__(self, codec: "IDFCodec", shape: tuple[int, int], adapt: bool):
        self.codec, self.h, self.w, self.adapt = codec, shape[0], shape[1], adapt

    def _residuals(self):
        """(mu, log_scale) -> the `Residuals` step of the tile's next part; the parts share
        one calibration."""
        calibration = Calibration(self.codec.net.parts) if self.adapt else None
        part = itertools.count()
        return lambda mu, ls: Residuals(mu, ls, self.codec.scale_factor, calibration, next(part))

    def push(self, stream, tiles: list[np.ndarray]) -> None:
        residuals = self._residuals()
        with stream.at(self.name):
            for z, mu, ls in self.codec.net.groups(self.codec._pad(tiles[0])):
                residuals(mu, ls).push(stream, z)

    def pop(self, stream) -> list[np.ndarray]:
        m, h, w = self.codec.net.multiple, self.h, self.w
        residuals = self._residuals()
        with stream.at(self.name):
            shape = (1, 3, h + (-h % m), w + (-w % m))
            x = self.codec.net.decode(shape, lambda mu, ls: residuals(mu, ls).pop(stream))
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
    adapt: bool = False


@registry.family("idf", spec="neurocodec.families.idf.spec:IDFSpec", config=IDFConfig)
class IDFCodec(LikelihoodCodec):
    """Parts are tiles, each one `FlowTile`."""
    parallel_parts = True  # a part's coding keeps no state on the codec

    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, tile=int(config.get("tile", 512)))
        self.scale_factor = float(config["scale_factor"])
        self.adapt = bool(config.get("adapt", False))
        self.net = IDF(config["levels"], tuple(config["couplings"]), tuple(config["hidden"]))
        self.net.load_state_dict({k: v.float() for k, v in weights.items()})
        self.net.eval()
        if self.tile % self.net.multiple:
            raise ValueError(f"tile must be a multiple of {self.net.multiple}")

    def params(self, x, quality) -> dict:
        return {"tile": self.tile, "adapt": int(self.adapt)}

    def check_params(self, params: dict) -> dict:
        tile = limits.header_int(params, "tile", self.net.multiple, MAX_TILE, self.name)
        if tile % self.net.multiple:
            raise FormatError(f"corrupted .ncd file: idf tiles must be a multiple of {self.net.multiple}, not {tile}")
        if "adapt" in params:  # files written before it have none: off
            limits.header_int(params, "adapt", 0, 1, self.name)
        return params

    def part_step(self, shapes, params) -> FlowTile:
        return FlowTile(self, shapes[0][:2], bool(params.get("adapt", 0)))

    def _pad(self, x: np.ndarray) -> torch.Tensor:
        h, w = x.shape[:2]
        m = self.net.multiple
        t = torch.from_numpy(np.array(x, dtype=np.float64)).permute(2, 0, 1)[None]
        return F.pad(t, (0, -w % m, 0, -h % m), mode="replicate")
