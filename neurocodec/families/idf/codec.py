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

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...codec import Codec, one_thread, tile_grid
from ...container import Header
from ...entropy import Categorical, DiscretizedLaplace, RangeDecoder, RangeEncoder
from ...errors import FormatError
from ... import exact
from .net import IDF

R = 2**12  # residuals are coded on [-R, R]; +-R is the escape
DIGIT = 2**12  # an escaped magnitude is two digits of this base
UNIFORM = Categorical(np.ones(DIGIT))


class IDFCodec(Codec):
    modality = "image"
    lossless = True

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config, weights_digest)
        self.tile = int(config.get("tile", 512))
        self.scale_factor = float(config["scale_factor"])
        self.net = IDF(config["levels"], tuple(config["couplings"]), tuple(config["hidden"]))
        self.net.load_state_dict({k: v.float() for k, v in weights.items()})
        self.net.eval()
        if self.tile % self.net.multiple:
            raise ValueError(f"tile must be a multiple of {self.net.multiple}")

    # the prior of one part, shared by encoder and decoder -------------------------------
    def _dist(self, mu: torch.Tensor, log_scale: torch.Tensor) -> tuple[torch.Tensor, DiscretizedLaplace]:
        centre = torch.floor(mu + 0.5)
        scale = exact.fixed_exp(log_scale * exact.ONE) * self.scale_factor
        dist = DiscretizedLaplace((mu - centre).numpy(), scale.numpy(), -R, R)
        return centre, dist

    def _pad(self, x: np.ndarray) -> torch.Tensor:
        h, w = x.shape[:2]
        m = self.net.multiple
        t = torch.from_numpy(np.array(x, dtype=np.float64)).permute(2, 0, 1)[None]
        return F.pad(t, (0, -w % m, 0, -h % m), mode="replicate")

    @torch.no_grad()
    def _parts(self, x: np.ndarray):
        """(residuals, distribution) of every coded part of a tile, in coding order."""
        with exact.exact_mode(), one_thread():
            groups = self.net.groups(self._pad(x))
        for z, mu, ls in groups:
            centre, dist = self._dist(mu, ls)
            yield (z - centre).numpy().ravel().astype(np.int64), dist

    def encode_tile(self, x: np.ndarray) -> bytes:
        enc = RangeEncoder()
        for r, dist in self._parts(x):
            enc.encode(np.clip(r, -R, R), dist)
            esc = np.abs(r[np.abs(r) >= R]) - R
            # cannot happen: |translation| <= 1024 * 128 per coupling, so |latent| < 2**21
            if esc.size and esc.max() >= DIGIT**2:
                raise OverflowError("latent out of the escape range")
            enc.encode(esc // DIGIT, UNIFORM)
            enc.encode(esc % DIGIT, UNIFORM)
        return enc.to_bytes()

    def ideal_bits(self, img: np.ndarray) -> float:
        """The model's own code length -log2 p of `img` (all tiles), to compare with files."""
        total = 0.0
        for r0, c0, th, tw in tile_grid(img.shape[0], img.shape[1], self.tile):
            for r, dist in self._parts(img[r0 : r0 + th, c0 : c0 + tw]):
                total += float(dist.bits(np.clip(r, -R, R)).sum()) + 2 * math.log2(DIGIT) * int((np.abs(r) >= R).sum())
        return total

    @torch.no_grad()
    def decode_tile(self, data: bytes, h: int, w: int) -> np.ndarray:
        m = self.net.multiple
        dec = RangeDecoder(data)

        def decode_part(mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
            centre, dist = self._dist(mu, log_scale)
            r = dec.decode(dist)
            esc = np.abs(r) == R
            n = int(esc.sum())
            if n:
                mag = R + dec.decode(UNIFORM, n) * DIGIT + dec.decode(UNIFORM, n)
                r[esc] = np.sign(r[esc]) * mag
            return torch.from_numpy(r.astype(np.float64)).reshape(mu.shape) + centre

        shape = (1, 3, h + (-h % m), w + (-w % m))
        with exact.exact_mode(), one_thread():
            x = self.net.decode(shape, decode_part)[0, :, :h, :w]
        if x.min() < 0 or x.max() > 255:
            raise FormatError("corrupted .ncd file: idf decoded pixels out of range")
        return x.permute(1, 2, 0).numpy().astype(np.uint8)

    # Codec interface -------------------------------------------------------------------
    def encode_chunks(self, img: np.ndarray, quality: int | None) -> tuple[dict, list[bytes]]:
        tiles = tile_grid(img.shape[0], img.shape[1], self.tile)
        chunks = [self.encode_tile(img[r : r + th, c : c + tw]) for r, c, th, tw in tiles]
        return {"tile": self.tile}, chunks

    def decode_chunks(self, header: Header, chunks: list[bytes]) -> np.ndarray:
        tile = header.params.get("tile")
        if not (isinstance(tile, int) and 0 < tile <= 8192 and tile % self.net.multiple == 0):
            raise FormatError("corrupted .ncd file: invalid idf parameters")
        height, width, _ = header.shape
        tiles = tile_grid(height, width, tile)
        if len(tiles) != len(chunks):
            raise FormatError(f"corrupted .ncd file: {len(chunks)} chunks for {len(tiles)} tiles")
        out = np.empty((height, width, 3), dtype=np.uint8)
        for (r, c, th, tw), data in zip(tiles, chunks):
            out[r : r + th, c : c + tw] = self.decode_tile(data, th, tw)
        return out
