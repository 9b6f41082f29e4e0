"""`bitsback`: lossless RGB images by bits-back coding (BB-ANS / Bit-Swap) of a 2-level VAE.

Per tile, on one ANS stack (`AnsCoder`), the encoder runs Bit-Swap's order

    pop z1 ~ q(z1|x)   push x ~ p(x|z1)   pop z2 ~ q(z2|z1)   push z1 ~ p(z1|z2)   push z2 ~ p(z2)

and the decoder runs it backwards, pushing the posterior samples back: the bits the encoder
took with each pop are returned, so a tile costs -log p(x, z) + log q(z|x), the ELBO.

Latents are Gaussians discretized on bins of width 2**-5 (indices -512..512); posterior and
prior use the same bins, so the exact network sees `index * 2**-5`, a point of its fixed-point
grid. Every network runs in exact mode (`neurocodec.exact`), so decoder and encoder build identical
distributions on any machine and thread count.

Initial bits. The first pop of a stack has nothing to take bits from (constriction's empty
`AnsCoder` pops zeros, a non-random sample that cannot be pushed back). So each chunk's stack
starts from a fixed pseudo-random seed of words that the decoder rebuilds itself; the words
of the seed the encoder never touched are stripped from the file (their count is stored), and
what stays is the part the first tile borrowed: the initial-bits overhead, paid once per
chunk, not per tile. The decoder must end with exactly the seed again, a check of the data.

Tiles (default 128x128, padded to a multiple of 2**(levels+1) with the value 128, which is
known to the decoder and not coded) are chained on one stack; a chunk holds up to
`chunk_pixels` pixels of tiles (bounded memory for huge images).
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch

from ...codec import Codec, one_thread, tile_grid
from ...container import Header
from ...entropy import AnsCoder, DiscretizedGaussian, DiscretizedLaplace
from ...errors import FormatError
from ... import exact
from .net import BitsBackNet, laplace_logp

DELTA = 2.0**-5  # latent bin width (a power of two: bins are exact fixed-point values)
Z_HALF = 512  # latent indices in [-512, 512]
PRECISION = 24  # constriction's default ANS precision: a pop takes at most 24 bits
SEED = 0x6269_7473  # "bits"


class _Stack:
    """An AnsCoder that also sums the ideal code lengths: -ELBO = pushed - popped bits."""

    def __init__(self, data: bytes | None):
        self.coder = AnsCoder(data)
        self.bits = 0.0
        self.track = False

    def push(self, symbols, dist):
        self.coder.push(symbols, dist)
        if self.track:
            self.bits += float(dist.bits(symbols).sum())

    def pop(self, dist, n=None):
        s = self.coder.pop(dist, n)
        if self.track:
            self.bits -= float(dist.bits(s).sum())
        return s


class BitsBackCodec(Codec):
    modality = "image"
    lossless = True

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config, weights_digest)
        self.net = BitsBackNet(**config["arch"])
        self.net.load_state_dict({k: v.float() for k, v in weights.items()})
        self.net.eval()
        self.tile = int(config.get("tile", 128))
        self.chunk_pixels = int(config.get("chunk_pixels", 1 << 21))
        self.multiple = 2 ** (self.net.levels + 1)
        self.last_neg_elbo_bits: float | None = None  # set by each encode: the model's -ELBO

    # --- shared by encoder and decoder --------------------------------------------------
    def seed_words(self, tile: int) -> np.ndarray:
        """The fixed start of every chunk's stack: enough words for the first tile's pops."""
        p = -(-tile // self.multiple) * self.multiple // 2**self.net.levels
        n = (p * p * self.net.c1 * PRECISION) // 32 + 64
        return np.random.default_rng(SEED).integers(1, 2**32, n, dtype=np.uint32)

    @staticmethod
    def _z_dist(mu: torch.Tensor, ls: torch.Tensor) -> DiscretizedGaussian:
        """A latent Gaussian (exact-mode mean and log-scale) on the bins of width DELTA."""
        means = (mu / (exact.ONE * DELTA)).numpy().ravel()
        scales = (exact.fixed_exp(ls) / DELTA).numpy().ravel()
        return DiscretizedGaussian(means, scales, -Z_HALF, Z_HALF)

    @staticmethod
    def _z_fixed(idx: np.ndarray, shape) -> torch.Tensor:
        return torch.from_numpy(np.asarray(idx, dtype=np.float64).reshape(shape)) * (exact.ONE * DELTA)

    def _z2_prior(self, shape) -> DiscretizedGaussian:
        n = math.prod(shape)
        return DiscretizedGaussian(np.zeros(n), np.full(n, 1 / DELTA), -Z_HALF, Z_HALF)

    def _pixel_dist(self, out, base, target, c, mask) -> DiscretizedLaplace:
        mean, ls = self.net.pixel_params(out, base, target, c)
        means = 128 + mean / exact.ONE * 128
        scales = exact.fixed_exp(ls) * 128
        return DiscretizedLaplace(means[:, 0][mask].numpy(), scales[:, 0][mask].numpy(), 0, 255)

    def _padded(self, th: int, tw: int) -> tuple[int, int, torch.Tensor]:
        m = self.multiple
        ph, pw = -(-th // m) * m, -(-tw // m) * m
        mask = torch.zeros(1, 1, ph, pw, dtype=torch.bool)
        mask[..., :th, :tw] = True
        return ph, pw, mask

    # --- one tile -----------------------------------------------------------------------
    def encode_tile(self, stack: _Stack, img: np.ndarray) -> None:
        th, tw = img.shape[:2]
        ph, pw, mask = self._padded(th, tw)
        sym = torch.full((1, 3, ph, pw), 128.0, dtype=torch.float64)
        sym[0, :, :th, :tw] = torch.from_numpy(np.array(img)).permute(2, 0, 1).double()
        x = (sym - 128) * (exact.ONE / 128)
        net = self.net
        mu1, ls1 = net.posterior1(x)
        z1_idx = stack.pop(self._z_dist(mu1, ls1))
        z1 = self._z_fixed(z1_idx, mu1.shape)
        feat = net.features(z1)
        for k in reversed(range(len(net.stages))):
            known, base = net.stage_context(x, k)
            out = net.stage_out(k, feat, known)
            target, s, m = net.stage_pixels(x, k), net.stage_pixels(sym, k), net.stage_pixels(mask, k)[:, 0]
            for c in (2, 1, 0):
                stack.push(s[:, c][m].numpy(), self._pixel_dist(out, base, target, c, m))
        mu2, ls2 = net.posterior2(z1)
        z2_idx = stack.pop(self._z_dist(mu2, ls2))
        z2 = self._z_fixed(z2_idx, mu2.shape)
        stack.push(z1_idx, self._z_dist(*net.prior1(z2)))
        stack.push(z2_idx, self._z2_prior(mu2.shape))

    def decode_tile(self, stack: _Stack, th: int, tw: int) -> np.ndarray:
        net = self.net
        ph, pw, mask = self._padded(th, tw)
        s = 2**net.levels
        z2_shape = (1, net.c2, ph // (2 * s), pw // (2 * s))
        z2_idx = stack.pop(self._z2_prior(z2_shape))
        z2 = self._z_fixed(z2_idx, z2_shape)
        mup, lsp = net.prior1(z2)
        z1_idx = stack.pop(self._z_dist(mup, lsp))
        z1 = self._z_fixed(z1_idx, mup.shape)
        stack.push(z2_idx, self._z_dist(*net.posterior2(z1)))
        feat = net.features(z1)
        x = torch.zeros(1, 3, ph, pw, dtype=torch.float64)
        sym = torch.full((1, 3, ph, pw), 128.0, dtype=torch.float64)
        for k in range(len(net.stages)):
            known, base = net.stage_context(x, k)
            out = net.stage_out(k, feat, known)
            target, sv, m = net.stage_pixels(x, k), net.stage_pixels(sym, k), net.stage_pixels(mask, k)[:, 0]
            for c in range(3):
                vals = torch.from_numpy(stack.pop(self._pixel_dist(out, base, target, c, m))).double()
                chan = sv[:, c].clone()
                chan[m] = vals
                sv[:, c] = chan  # views: these writes land in `sym` and `x`
                target[:, c] = (chan - 128) * (exact.ONE / 128)
        stack.push(z1_idx, self._z_dist(*net.posterior1(x)))
        return sym[0, :, :th, :tw].permute(1, 2, 0).to(torch.uint8).numpy()

    # --- chunks -------------------------------------------------------------------------
    def _groups(self, height: int, width: int, tile: int, per_chunk: int):
        tiles = tile_grid(height, width, tile)
        return [tiles[i : i + per_chunk] for i in range(0, len(tiles), per_chunk)]

    @torch.no_grad()
    def encode_chunks(self, img: np.ndarray, quality=None) -> tuple[dict, list[bytes]]:
        tile, per_chunk = self.tile, max(1, self.chunk_pixels // self.tile**2)
        seed = self.seed_words(tile)
        chunks, elbo = [], 0.0
        for group in self._groups(img.shape[0], img.shape[1], tile, per_chunk):
            stack = _Stack(seed.astype("<u4").tobytes())
            stack.track = True
            with exact.exact_mode(), one_thread():
                for r, c, th, tw in group:
                    self.encode_tile(stack, img[r : r + th, c : c + tw])
            elbo += stack.bits
            words = np.frombuffer(stack.coder.to_bytes(), dtype="<u4")
            n = min(len(words), len(seed))
            kept = n if np.array_equal(words[:n], seed[:n]) else int(np.argmin(words[:n] == seed[:n]))
            chunks.append(struct.pack("<I", kept) + words[kept:].tobytes())
        self.last_neg_elbo_bits = elbo
        return {"tile": tile, "tiles_per_chunk": per_chunk}, chunks

    @torch.no_grad()
    def decode_chunks(self, header: Header, chunks: list[bytes]) -> np.ndarray:
        tile, per_chunk = self._header_params(header)
        height, width, _ = header.shape
        groups = self._groups(height, width, tile, per_chunk)
        if len(groups) != len(chunks):
            raise FormatError(f"corrupted .ncd file: {len(chunks)} chunks for {len(groups)} tile groups")
        seed = self.seed_words(tile)
        out = np.empty((height, width, 3), dtype=np.uint8)
        for group, data in zip(groups, chunks):
            if len(data) < 4 or (len(data) - 4) % 4:
                raise FormatError("corrupted .ncd file: bad bitsback chunk length")
            (kept,) = struct.unpack("<I", data[:4])
            if kept > len(seed):
                raise FormatError("corrupted .ncd file: bad bitsback seed length")
            stack = _Stack(seed[:kept].astype("<u4").tobytes() + data[4:])
            with exact.exact_mode(), one_thread():
                for r, c, th, tw in reversed(group):
                    out[r : r + th, c : c + tw] = self.decode_tile(stack, th, tw)
            if stack.coder.to_bytes() != seed.astype("<u4").tobytes():
                raise FormatError("corrupted .ncd file: bitsback stack did not return to its seed")
        return out

    @staticmethod
    def _header_params(header: Header) -> tuple[int, int]:
        p = header.params
        t, n = p.get("tile"), p.get("tiles_per_chunk")
        if not (isinstance(t, int) and 16 <= t <= 4096 and isinstance(n, int) and n >= 1):
            raise FormatError("corrupted .ncd file: invalid bitsback parameters")
        return t, n
