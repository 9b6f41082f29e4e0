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
from ...entropy.calibration import (MeanCalibration, ScaleCalibration, normalized_error, row_bands, scale_bins, scale_level,
                                   signed_error)
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
MEAN_PRIOR = 1000  # `MeanCalibration`'s


class Calibration:
    """`idf`'s online calibration to the tile being coded (`entropy.calibration`): the scales
    by (the part, its predicted scale in half-octaves), and with `means` ("adapt": 2) the means
    too, by (the part, the channel, the predicted scale).

    A part's prior depends only on the parts before it, so a part can be coded in bands of
    rows, each band calibrated by everything coded before it in the tile. Measured in a float
    simulation with the weights a98b1fadee6f on kodim01-06: 3.2235 bpsp without, 3.1915 with
    the scales in 16 bands (8 bands: 3.1950), 3.1587 with the means too. The network is
    overconfident by a factor that differs by part and by image (the best single factor per
    part: 1.05-1.65 on Kodak, 0.6-0.7 for the first part of kodim15 and 23). And on Kodak its
    finest R and B details are biased by +0.4 to +0.7 latent units, its finest G by -0.1 to
    -0.4, where on a training photo they are within 0.15 of 0: the means gain almost all of
    their 1.2 % there, and 0.06 % on 12 other photos. Contexts by the errors of the part before
    at the same place added nothing (the network sees that part already)."""

    SCALE_BINS = scale_bins(LOG_SCALE_RANGE)

    def __init__(self, parts: int, channels: int, means: bool):
        self.scales = ScaleCalibration(parts * self.SCALE_BINS, floor=LOG_SCALE_RANGE[0])
        self.means = MeanCalibration(parts * channels * self.SCALE_BINS, MEAN_PRIOR) if means else None
        self.channels = channels  # the most channels of a part

    def contexts(self, part: int, log_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the scale's, the mean's) context of each latent of `part`."""
        level = scale_level(log_scale * exact.ONE, LOG_SCALE_RANGE[0])
        channel = torch.arange(log_scale.shape[1]).view(1, -1, 1, 1)
        return part * self.SCALE_BINS + level, (part * self.channels + channel) * self.SCALE_BINS + level


class Residuals(Step):
    """One part of the latents: residuals r = z - round(mean) under the Laplace prior, then
    the escaped magnitudes as two uniform digits each. With a `calibration`, in bands of rows,
    each under scales (and means) calibrated by what was coded before it."""

    name = "part"

    def __init__(self, mu: torch.Tensor, log_scale: torch.Tensor, scale_factor: float,
                 calibration: Calibration | None = None, part: int = 0):
        self.mu = mu
        self.scale = exact.fixed_exp(log_scale * exact.ONE) * scale_factor
        self.calibration = calibration
        rows = mu.shape[-2]
        if calibration is None:
            self.bands = [slice(0, rows)]
        else:
            self.scale_contexts, self.mean_contexts = calibration.contexts(part, log_scale)
            self.bands = row_bands(rows, BANDS)

    def _params(self, band: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, scale) of the band's latents."""
        mean, scale, c = self.mu[..., band, :], self.scale[..., band, :], self.calibration
        if c is not None:
            scale = c.scales.scale(self.scale_contexts[..., band, :], scale)
            if c.means is not None:
                mean = mean + c.means.shift(self.mean_contexts[..., band, :], scale)
        return mean, scale

    def _coded(self, band: slice, z: torch.Tensor, scale: torch.Tensor) -> None:
        """The band's latents `z` were coded under `scale`: the calibration learns from them."""
        c = self.calibration
        if c is None:
            return
        z, mu = z * exact.ONE, self.mu[..., band, :] * exact.ONE
        c.scales.update(self.scale_contexts[..., band, :], normalized_error(z, mu, self.scale[..., band, :]))
        if c.means is not None:
            c.means.update(self.mean_contexts[..., band, :], signed_error(z, mu, scale))

    def push(self, stream, z: torch.Tensor) -> None:
        for band in self.bands:
            mean, scale = self._params(band)
            centre = torch.floor(mean + 0.5)
            r = (z[..., band, :] - centre).numpy().ravel().astype(np.int64)
            stream.push(np.clip(r, -R, R), DiscretizedLaplace((mean - centre).numpy(), scale.numpy(), -R, R))
            esc = np.abs(r[np.abs(r) >= R]) - R
            # cannot happen: |translation| <= 1024 * 128 per coupling, so |latent| < 2**21
            if esc.size and esc.max() >= DIGIT**2:
                raise OverflowError("latent out of the escape range")
            stream.push(esc // DIGIT, UNIFORM)
            stream.push(esc % DIGIT, UNIFORM)
            self._coded(band, z[..., band, :], scale)

    def pop(self, stream) -> torch.Tensor:
        z = torch.empty_like(self.mu)
        for band in self.bands:
            mean, scale = self._params(band)
            centre = torch.floor(mean + 0.5)
            r = stream.pop(DiscretizedLaplace((mean - centre).numpy(), scale.numpy(), -R, R))
            esc = np.abs(r) == R
            n = int(esc.sum())
            if n:
                mag = R + stream.pop(UNIFORM, n) * DIGIT + stream.pop(UNIFORM, n)
                r[esc] = np.sign(r[esc]) * mag
            z[..., band, :] = torch.from_numpy(r.astype(np.float64)).reshape(centre.shape) + centre
            self._coded(band, z[..., band, :], scale)
        return z


class FlowTile(Step):
    """A tile through the flow: the encoder codes the latent parts the forward flow gives, in
    order; the decoder inverts the flow, which asks for each part given those before it."""

    name = "flow"

    def __init__(self, codec: "IDFCodec", shape: tuple[int, int], adapt: int):
        self.codec, self.h, self.w, self.adapt = codec, shape[0], shape[1], adapt

    def _residuals(self):
        """(mu, log_scale) -> the `Residuals` step of the tile's next part; the parts share
        one calibration."""
        net = self.codec.net
        calibration = Calibration(net.parts, net.part_channels, means=self.adapt >= 2) if self.adapt else None
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
    adapt: int = 0  # calibrated to the tile as it is coded: 1 the scales, 2 the means too


@registry.family("idf", spec="neurocodec.families.idf.spec:IDFSpec", config=IDFConfig)
class IDFCodec(LikelihoodCodec):
    """Parts are tiles, each one `FlowTile`."""
    parallel_parts = True  # a part's coding keeps no state on the codec

    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, tile=int(config.get("tile", 512)))
        self.scale_factor = float(config["scale_factor"])
        self.adapt = int(config.get("adapt", 0))
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
            limits.header_int(params, "adapt", 0, 2, self.name)
        return params

    def part_step(self, shapes, params) -> FlowTile:
        return FlowTile(self, shapes[0][:2], params.get("adapt", 0))

    def _pad(self, x: np.ndarray) -> torch.Tensor:
        h, w = x.shape[:2]
        m = self.net.multiple
        t = torch.from_numpy(np.array(x, dtype=np.float64)).permute(2, 0, 1)[None]
        return F.pad(t, (0, -w % m, 0, -h % m), mode="replicate")
