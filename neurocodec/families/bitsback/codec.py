"""`bitsback`: lossless RGB images by bits-back coding (BB-ANS / Bit-Swap) of a 2-level VAE.

Per tile, on one ANS stack (`AnsCoder`), the encoder runs Bit-Swap's order

    pop z1 ~ q(z1|x)   push x ~ p(x|z1)   pop z2 ~ q(z2|z1)   push z1 ~ p(z1|z2)   push z2 ~ p(z2)

and the decoder runs it backwards, pushing the posterior samples back: the bits the encoder
took with each pop are returned, so a tile costs -log p(x, z) + log q(z|x), the ELBO.

Latents are Gaussians discretized on bins of width 2**-zbin over [-16, 16] (`LatentGrid`; header
"zbin", 2 by default, 5 in files without it); posterior and prior use the same bins, so the
exact network sees `index * 2**-zbin`, a point of its fixed-point grid. Every network runs in
exact mode (`neurocodec.exact`), so decoder and encoder build identical distributions on any
machine and thread count.

Initial bits. The first pop of a stack has nothing to take bits from (constriction's empty
`AnsCoder` pops zeros, a non-random sample that cannot be pushed back). So each chunk's stack
starts from a fixed pseudo-random seed of words that the decoder rebuilds itself; the words
of the seed the encoder never touched are stripped from the file (their count is stored), and
what stays is the part the first tile borrowed: the initial-bits overhead, paid once per
chunk, not per tile. Files with "mean_first" borrow nothing: a chunk's first tile takes its
latents at the prior's means, uncoded, and pushes only its pixels, from which the next tile
borrows (off by default: `mean_tile_step`). The decoder must end with exactly the seed again, a check of
the data.

Tiles (default 128x128, padded to a multiple of 2**(levels+1) with the value 128, which is
known to the decoder and not coded) are chained on one stack; a chunk holds up to
`chunk_pixels` pixels of tiles (bounded memory for huge images).

Adapting to the image. Within a tile, both ends calibrate the pixels' scales to what the tile's
coded pixels say of the model (`Calibration`). Across the image, which the stack order keeps
from the decoder until it is decoded, the encoder speaks instead: it runs the likelihood once
over half the tiles without coding, fits each (stage, colour)'s errors by a bias and the errors
of the pixel's colours before, picks a factor on its scales, and writes the roughly 90
integers into the header ("fit", "fit_scale": `image_fit`), which both ends then code with. On
the finest level, where 3/4 of the pixels are, it refits the mean part of each stage's output
layer to the image as well, and the log-scale part: 432 small integers each ("fit_hidden",
"fit_hidden_scale"), written only where the analysis expects them to pay for their 576 header
bytes (Kodak 3.0056 -> 2.9673 bpsp for the means; -0.3 % more on kodim01/05/13/23 for the scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import base64
import binascii
import math

import numpy as np
import torch
import torch.nn.functional as F

from ... import exact
from ...codec import tile_grid
from ... import limits, registry
from ...compose import BitsBack, Each, LikelihoodCodec, Lockstep, Symbols, seed_words
from ...entropy import DiscretizedGaussian, DiscretizedLaplace
from ...entropy.calibration import (ENERGY_BINS, SIGNED_CLAMP, MeanCalibration, ScaleCalibration, energy_level,
                                   normalized_error, row_bands, scale_bins, scale_level, signed_error)
from ...errors import FormatError
from .net import LOG_SCALE_X, BitsBackNet

# Latent bins of width 2**-ZBIN (header "zbin"; files without it: ZBIN_BEFORE). The latents carry
# almost nothing (KL about 0.007 bpsp), so what the bin width changes is mostly the initial bits a
# chunk's first tile borrows, log2(1 / width) per latent: 2**-2 against 2**-5 took kodim23
# 2.6112 -> 2.6013 bpsp and kodim01 3.2852 -> 3.2685, all of Kodak 2.9466 -> 2.9360; 2**-3 and
# 2**-1 gained less.
ZBIN, ZBIN_BEFORE, ZBIN_RANGE = 2, 5, (0, 5)
Z_LIMIT_BINS = 16  # latents on [-16, 16]
PRECISION = 24  # constriction's default ANS precision: a pop takes at most 24 bits
SEED = 0x6269_7473  # "bits"
# What a file may ask of a decoder. The networks run on a whole tile at once (48 float64
# channels at full resolution and more: about 3 kB per pixel), so a tile of 4096 x 4096 asked
# for over 40 GB; the shipped tiles are 128 x 128, and a file may ask for up to 512 x 512
# (16 times the pixels, about 0.8 GB). A chunk's tiles share one stack: the shipped 128 tiles
# are 2**21 pixels, a file may ask for four times that.
MIN_TILE, MAX_TILE = 16, 512
MAX_CHUNK_PIXELS = 1 << 23
# The most pixels a chunk may hold per byte (LikelihoodCodec.samples_per_chunk_byte). Measured
# (fuzz/measure_bounds.py), flat images cost at least one byte per 8.4 pixels at 256 x 256
# (white; black 5.4), 10.4 at 1024 x 1024; 2**7 leaves a margin of 12. A stack decodes
# garbage without an error until its end, at about 6 us a pixel: at most 0.8 ms a byte.
PIXELS_PER_CHUNK_BYTE = 1 << 7
# A chunk's tiles are chained on one stack and decode one after another, so an image in one
# chunk keeps one core busy. The encoder cuts an image of at least 2 x SIDE_BY_SIDE_TILES
# tiles into at least two chunks, which two threads code side by side, each chunk paying its
# own initial bits: +0.3 % on kodim23, 01, 13 and 05 in two chunks of 12 tiles (3.3972 ->
# 3.4074 bpsp, the weights before), for about half the decode time on two cores. At effort 1
# the encoder keeps them on one stack (one chunk of up to `chunk_pixels`): smaller, decoded on
# one core.
SIDE_BY_SIDE_TILES = 8
# With "adapt": 2 a stage's pixels are coded in bands of rows, each under means moved by the
# signed errors of the bands before it (`MeanCalibration`): the pixels of a stage depend only on
# the stages before, so the order within one is free.
BANDS, MIN_BAND_ROWS = 8, 8
MEAN_PRIOR = 100
# Header "fit" (and "bias", written by eb79408: the first terms only): per (stage, colour c), c + 1
# integers w; the means move by (w[0] + w[1] e_R + ... ) / BIAS_UNIT of their scale, e_R ... being
# the signed errors of the pixel's colours before c (`image_fit`); |w| <= BIAS_LIMIT.
BIAS_UNIT = 32
BIAS_LIMIT = 4 * BIAS_UNIT
# Header "fit_scale": per (stage, colour), a factor v / BIAS_UNIT on the calibrated scales, chosen
# by the encoder among SCALE_CHOICES (the fitted means leave errors smaller than the scales the
# calibration learned against the network's means, by a factor that differs by stage).
SCALE_CHOICES = (20, 23, 25, 27, 29, 30, 32, 34, 36, 40, 45, 50, 56)
SCALE_RANGE = (16, 64)
FIT_SAMPLES = 150_000  # at most about this many sub-pixels of the analysis pass choose the factors
# Header "fit_hidden": per colour of the finest level's HIDDEN_STAGES stages, one integer in
# [-HIDDEN_LIMIT, HIDDEN_LIMIT] per channel of the stage network's last hidden layer (base64 of
# int8, colour-major): the means move by sum_j v_j h_j / HIDDEN_UNIT of their scale too, h the
# hidden layer at the pixel. The encoder so refits the mean part of the network's 1x1 output
# layer to the image, jointly with "fit" (ridge HIDDEN_RIDGE on these terms). The finest level
# holds 3/4 of the pixels and most of the gain; the coarser stages would cost more header than
# they save.
HIDDEN_STAGES, HIDDEN_UNIT, HIDDEN_LIMIT, HIDDEN_RIDGE = 3, 32, 127, 30.0
HIDDEN_MARGIN = 1.25  # written only when the analysis expects them to save this many times their header's bits
# Header "fit_hidden_scale": the same for the log-scales, which move by sum_j v_j h_j /
# HIDDEN_SCALE_UNIT (nats, h in natural units) before the calibration; fitted by the encoder
# under the refitted means, by L-BFGS on the discretized Laplace's code length of its sample.
HIDDEN_SCALE_UNIT, HIDDEN_SCALE_RIDGE = 32, 100.0


@dataclass
class BitsBackConfig:
    arch: dict
    tile: int = 128
    chunk_pixels: int = 1 << 21
    adapt: int = 1  # calibrate the pixels' scales to the tile as it is coded (header "adapt": 1; 2: in bands, with the means, as 57fdce3 wrote)
    fit: bool = True  # fit each (stage, colour)'s means and scales to the image (header "fit", "fit_scale": `image_fit`)
    fit_hidden: bool = True  # with the fit, refit the finest stages' means and log-scales on their hidden layer where it pays (headers "fit_hidden", "fit_hidden_scale")
    mean_first: bool = False  # a chunk's first tile borrows no bits (`mean_tile_step`, header "mean_first": 1)
    zbin: int = ZBIN  # latent bins of width 2**-zbin (header "zbin")


@registry.family("bitsback", spec="neurocodec.families.bitsback.spec:BitsBackSpec", config=BitsBackConfig)
class BitsBackCodec(LikelihoodCodec):
    """Parts are chunks of tiles chained on one ANS stack; each tile is two nested
    `compose.BitsBack` steps (Bit-Swap)."""
    parallel_parts = True  # a part's coding keeps no state on the codec

    coder = "ans"
    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE
    efforts = (0, 1)  # 1: an image's tiles on one stack, paying the initial bits once

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest)
        self.net = BitsBackNet(**config["arch"])
        self.net.load_state_dict({k: v.float() for k, v in weights.items()})
        self.net.eval()
        self.tile = int(config.get("tile", 128))
        self.chunk_pixels = int(config.get("chunk_pixels", 1 << 21))
        self.multiple = 2 ** (self.net.levels + 1)
        self.adapt = int(config.get("adapt", 1))
        self.fit = bool(config.get("fit", True))
        self.fit_hidden = self.fit and bool(config.get("fit_hidden", True))
        self.mean_first = bool(config.get("mean_first", False))
        self.zbin = int(config.get("zbin", ZBIN))

    # --- layout ----------------------------------------------------------------------------
    def params(self, x, quality) -> dict:
        tiles = _tile_count(x.shape, self.tile)
        per_chunk = max(1, self.chunk_pixels // self.tile**2)
        if tiles >= 2 * SIDE_BY_SIDE_TILES and not self.effort:
            per_chunk = min(per_chunk, -(-tiles // 2))
        params = {"tile": self.tile, "tiles_per_chunk": per_chunk, "adapt": int(self.adapt),
                  "mean_first": int(self.mean_first), "zbin": self.zbin}
        if self.fit:
            params["fit"], params["fit_scale"], hidden, hidden_scale = self.image_fit(x, params["adapt"], self.fit_hidden)
            for key, v in (("fit_hidden", hidden), ("fit_hidden_scale", hidden_scale)):
                if v is not None:
                    params[key] = base64.b64encode(v.astype(np.int8).tobytes()).decode("ascii")
        return params

    def check_params(self, params: dict) -> dict:
        t = limits.header_int(params, "tile", MIN_TILE, MAX_TILE, self.name)
        limits.header_int(params, "tiles_per_chunk", 1, MAX_CHUNK_PIXELS // t**2, self.name)
        for key, top in (("adapt", 2), ("mean_first", 1)):  # files written before them have none: off
            if key in params:
                limits.header_int(params, key, 0, top, self.name)
        if "zbin" in params:
            limits.header_int(params, "zbin", *ZBIN_RANGE, self.name)
        for key, size, (lo, hi) in (("bias", 3, (-BIAS_LIMIT, BIAS_LIMIT)), ("fit", 6, (-BIAS_LIMIT, BIAS_LIMIT)),
                                    ("fit_scale", 3, SCALE_RANGE)):
            w = params.get(key, [])
            if not (isinstance(w, list) and len(w) in (0, size * len(self.net.stages))
                    and all(type(b) is int and lo <= b <= hi for b in w)):
                raise FormatError(f"corrupted .ncd file: invalid '{self.name}' parameters")
        for key in ("fit_hidden", "fit_hidden_scale"):
            self._hidden_fit(params, key)
        return params

    def _hidden_fit(self, params: dict, key: str) -> torch.Tensor | None:
        """The header's "fit_hidden" or "fit_hidden_scale" as exact integers, (HIDDEN_STAGES * 3, width)."""
        if key not in params:
            return None
        text, size = params.get(key), HIDDEN_STAGES * 3 * self.net.width
        try:
            raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        v = np.frombuffer(raw, dtype=np.int8)
        if not params.get("fit") or v.size != size or (v < -HIDDEN_LIMIT).any():
            raise FormatError(f"corrupted .ncd file: invalid '{self.name}' parameters")
        return torch.from_numpy(v.astype(np.float64)).reshape(HIDDEN_STAGES * 3, self.net.width)

    def _fit(self, params: dict) -> "ImageFit | None":
        """What the header says of the image: "fit" (or eb79408's "bias", its constants only),
        and "fit_scale"."""
        if params.get("fit"):
            w = iter(params["fit"])
            terms = [[next(w) for _ in range(c + 1)] for _ in self.net.stages for c in range(3)]
        elif params.get("bias"):
            terms = [[b] for b in params["bias"]]
        else:
            return None
        return ImageFit(terms, params.get("fit_scale") or None, self._hidden_fit(params, "fit_hidden"),
                        self._hidden_fit(params, "fit_hidden_scale"))

    def plan(self, shape, p):
        tiles = [(slice(r, r + h), slice(c, c + w)) for r, c, h, w in tile_grid(shape[0], shape[1], p["tile"])]
        n = p["tiles_per_chunk"]
        return [tiles[i : i + n] for i in range(0, len(tiles), n)]

    def count_parts(self, shape, p) -> int:
        return -(-_tile_count(shape, p["tile"]) // p["tiles_per_chunk"])

    def stack_seed(self, params: dict) -> np.ndarray:
        """The fixed start of every chunk's stack: enough words for the first tile's pops."""
        tile = params["tile"]
        p = -(-tile // self.multiple) * self.multiple // 2**self.net.levels
        return seed_words((p * p * self.net.c1 * PRECISION) // 32 + 64, SEED)

    def part_step(self, shapes, params) -> Each:
        adapt, fit, grid = params.get("adapt", 0), self._fit(params), LatentGrid(params.get("zbin", ZBIN_BEFORE))
        steps = [self.tile_step(s[0], s[1], adapt, fit, grid) for s in shapes]
        if params.get("mean_first"):
            steps[0] = self.mean_tile_step(shapes[0][0], shapes[0][1], adapt, fit, grid)
        return Each(steps, name="tiles")

    # --- one tile: Bit-Swap, as two nested bits-back steps --------------------------------
    def tile_step(self, th: int, tw: int, adapt: int, fit: "ImageFit | None", g: "LatentGrid") -> BitsBack:
        net, (ph, pw) = self.net, self._padded(th, tw)
        s = 2**net.levels
        z2_shape = (1, net.c2, ph // (2 * s), pw // (2 * s))
        z1_shape = (1, net.c1, ph // s, pw // s)
        top = BitsBack(
            prior=Symbols(g.prior(z2_shape), z2_shape, name="z2"),
            likelihood=lambda z2: Symbols(g.dist(*net.prior1(g.fixed(z2))), z1_shape, name="z1"),
            posterior=lambda z1: Symbols(g.dist(*net.posterior2(g.fixed(z1))), z2_shape, name="z2"),
            name="z1|z2",
        )
        return BitsBack(
            prior=top,
            likelihood=lambda z1: Lockstep(lambda io, tile: self._pixels(io, net.features(g.fixed(z1)), th, tw, tile, adapt, fit),
                                           name="pixels"),
            posterior=lambda tile: Symbols(g.dist(*net.posterior1(self._fixed(tile, ph, pw)[1])), z1_shape, name="z1"),
            name="x|z1",
        )

    def mean_tile_step(self, th: int, tw: int, adapt: int, fit: "ImageFit | None", g: "LatentGrid") -> Lockstep:
        """A chunk's first tile without bits-back: its latents are not coded but taken at the
        prior's means (z2 = 0, z1 the mean of p(z1|z2)), so it borrows no initial bits. The
        latents carry little (their KL is about 0.005 bpsp). Off by default (config
        "mean_first"): with the weights before, kodim23, 01, 13 and 05 gained (two chunks
        3.4074 -> 3.3948 bpsp), but with the shipped ones all of Kodak lost (3.1031 ->
        3.1080), kodim15 and kodim23 by 1-2 %, and on kodim15 the file is then 11 % above
        the model's own ideal code length. Why: the next tile's posterior pops read the bits
        this tile's stage-0 pixels left on top of the stack, whose quantiles under an
        overconfident model (latents at a mean are no typical sample) pile up in the tails;
        the pops then draw latents far out in q (256 x 384 of kodim23: 246,000 ideal bits for
        the second tile's 2,048 against 10,900 normally, decaying over four tiles), which cost
        that tile's pixels dearly. A normal first tile leaves its latents, pushed under the
        prior, on top instead. A prior sample popped from a private seed in place of the mean
        (free, borrowing nothing) fares the same way: kodim15 -0.5 %, kodim01 0, kodim23 +0.9 %."""
        net, (ph, pw) = self.net, self._padded(th, tw)
        s = 2**net.levels
        z2 = np.zeros((1, net.c2, ph // (2 * s), pw // (2 * s)), dtype=np.int64)

        def pixels(io, tile):
            z1 = g.index(net.prior1(g.fixed(z2))[0])  # exact mode: the same on every machine
            return self._pixels(io, net.features(g.fixed(z1)), th, tw, tile, adapt, fit)

        return Lockstep(pixels, name="pixels")

    def _pixels(self, io, feat, th: int, tw: int, tile: np.ndarray | None, adapt: int,
                fit: "ImageFit | None" = None, observer: "_Observer | None" = None) -> np.ndarray:
        """The pixels of a tile given the latent's features, stage by stage of the polyphase
        pyramid, R, G, B within a stage, each conditioned on what came before; with `adapt`,
        each scale calibrated by what the tile's coded pixels say of the model (`Calibration`;
        2: in bands, the means too); with a `fit`, each (stage, colour)'s means moved by so many
        1/BIAS_UNIT of their scale, a constant and multiples of the signed errors of the colours
        before at the pixel (and, "fit_hidden", multiples of the finest stages' hidden layer), and
        its scales multiplied by a factor (after their log-scales moved by multiples of the
        hidden layer too, "fit_hidden_scale"). One `io.code` per (stage, colour) in that order, but
        for "adapt": 2. An `observer` (`image_fit`) is shown each stage's hidden layer."""
        net, (ph, pw) = self.net, self._padded(th, tw)
        mask = torch.zeros(1, 1, ph, pw, dtype=torch.bool)
        mask[..., :th, :tw] = True
        sym, x = self._fixed(tile, ph, pw)
        calibration = Calibration(net, ph, pw) if adapt else None
        means = MeanCalibration(3 * len(net.stages), MEAN_PRIOR) if adapt >= 2 else None
        first_refit = len(net.stages) - HIDDEN_STAGES
        for k in range(len(net.stages)):
            known, base = net.stage_context(x, k)
            hidden = net.stage_hidden(k, feat, known)
            out = net.stage_head(k, hidden)
            target, sv, mk = net.stage_pixels(x, k), net.stage_pixels(sym, k), net.stage_pixels(mask, k)[:, 0]
            if observer is not None and k >= first_refit:
                observer.hidden = hidden[0][:, mk[0]].T.numpy() / exact.ONE
            refit = scale_refit = None
            if fit and k >= first_refit:  # exact integers: (3, rows, cols)
                rows3 = slice(3 * (k - first_refit), 3 * (k - first_refit) + 3)
                if fit.hidden is not None:
                    refit = torch.einsum("cj,jrw->crw", fit.hidden[rows3], hidden[0])
                if fit.hidden_scale is not None:
                    scale_refit = torch.einsum("cj,jrw->crw", fit.hidden_scale[rows3], hidden[0]) / HIDDEN_SCALE_UNIT
            if calibration:
                calibration.start_stage(k)
            errors = []  # each colour's signed errors, for the "fit" of the colours after it
            for c in range(3):
                mean, log_scale = net.pixel_params(out, base, target, c)
                if scale_refit is not None:
                    log_scale = (log_scale + scale_refit[c]).clamp_(LOG_SCALE_X[0] * exact.ONE, LOG_SCALE_X[1] * exact.ONE)
                mean, unit_scale = mean[:, 0], exact.fixed_exp(log_scale)[:, 0]  # (1, rows, cols)
                contexts = calibration.contexts(c, log_scale) if calibration else None  # (rows, cols)
                chan, u, e = sv[:, c].clone(), torch.zeros_like(mean), torch.zeros_like(mean)
                for rows in row_bands(chan.shape[-2], BANDS, MIN_BAND_ROWS) if means else [slice(None)]:
                    keep, band, m, scale = mk[:, rows], chan[:, rows], mean[:, rows], unit_scale[:, rows]
                    if calibration:
                        scale = calibration.scale(contexts[rows], scale)
                    if means:
                        m = m + means.shift(3 * k + c, scale * exact.ONE)
                    coded_scale = scale
                    if fit:
                        w = fit.terms[3 * k + c]
                        shift = w[0] * exact.ONE + sum(wj * ej[:, rows] for wj, ej in zip(w[1:], errors))  # exact integers
                        if refit is None:
                            m = m + shift * scale / BIAS_UNIT
                        else:
                            m = m + (shift * (HIDDEN_UNIT // BIAS_UNIT) + refit[c][None, rows]) * scale / HIDDEN_UNIT
                        if fit.scales:
                            coded_scale = scale * fit.scales[3 * k + c] / BIAS_UNIT
                    dist = DiscretizedLaplace((128 + m / exact.ONE * 128)[keep].numpy(), (coded_scale * 128)[keep].numpy(), 0, 255)
                    band[keep] = torch.as_tensor(np.asarray(io.code(dist, band[keep].numpy().astype(np.int64))), dtype=torch.float64)
                    t = (band - 128) * (exact.ONE / 128)  # `band` is a view: the decoded values are in `chan` too
                    if calibration:
                        u[:, rows] = normalized_error(t, mean[:, rows], unit_scale[:, rows])
                        calibration.update(contexts[rows][keep[0]], u[:, rows][keep])
                    if means or fit:
                        e[:, rows] = signed_error(t, mean[:, rows], scale)
                    if means:
                        means.update(torch.full_like(e[:, rows][keep], 3 * k + c, dtype=torch.long), e[:, rows][keep])
                sv[:, c] = chan  # views: these writes land in `sym` and `x`
                target[:, c] = (chan - 128) * (exact.ONE / 128)
                if calibration:
                    calibration.remember(k, c, u, mk)
                errors.append(e)
        return sym[0, :, :th, :tw].permute(1, 2, 0).to(torch.uint8).numpy()

    def image_fit(self, x: np.ndarray, adapt: int, hidden: bool = False
                  ) -> tuple[list[int], list[int], np.ndarray | None, np.ndarray | None]:
        """The header's "fit", "fit_scale" and (with `hidden`, where they pay) "fit_hidden" and
        "fit_hidden_scale". For each (stage, colour c): the least-squares fit of its signed
        errors (x - mean) / scale over the image by a constant and the signed errors of the
        colours before it at the pixel, in 1/BIAS_UNIT (on the finest stages, with `hidden`,
        jointly with their hidden layer's channels, in 1/HIDDEN_UNIT, and then the log-scales'
        multiples of them, `_solve_log_scales`); then, under the means and log-scales so moved,
        the factor of SCALE_CHOICES on its scales that codes a sample of its sub-pixels in the
        fewest bits.
        From one pass of the likelihood without coding over half the tiles (a checkerboard:
        the fit is the image's; the constant alone on kodim01-04, 2.9786 bpsp against 2.9800
        from every tile, at 1.54 s against 2.05 s encode), the latents at the posterior's means
        (they carry almost nothing)."""
        stages, zgrid = len(self.net.stages), LatentGrid(self.zbin)  # the bins of the file being written
        observer = _Observer(stages, every=max(1, x.size // (2 * FIT_SAMPLES)),
                             hidden_from=stages - HIDDEN_STAGES if hidden else stages)
        grid = tile_grid(x.shape[0], x.shape[1], self.tile)
        analysed = [(r, c, h, w) for r, c, h, w in grid if not (r + c) // self.tile % 2]  # a checkerboard of tiles
        with exact.exact_mode():
            for r, c, h, w in analysed:
                tile, (ph, pw) = x[r : r + h, c : c + w], self._padded(h, w)
                z1 = zgrid.index(self.net.posterior1(self._fixed(tile, ph, pw)[1])[0])
                observer.call = 0
                self._pixels(observer, self.net.features(zgrid.fixed(z1)), h, w, tile, min(adapt, 1),
                             observer=observer)
        share = x.shape[0] * x.shape[1] / sum(h * w for _, _, h, w in analysed)  # the sample stands for the image
        keys, gain, scale_gain = [], 0.0, 0.0  # per (stage, colour): n, (fit, factor), with the hidden terms
        for i, ((xtx, xty), sample) in enumerate(zip(observer.sums, observer.samples)):
            n = i % 3 + 1  # the constant and the colours before
            sample = tuple(np.concatenate(a) for a in zip(*sample)) if sample else None  # once, for every use below
            w = _solve(xtx[:n, :n], xty[:n], n)
            factor, bits = _scale_factor(sample, w, n)
            refit = None
            if len(xty) > n:
                refit = _solve(xtx, xty, n)
                refit_factor, refit_bits = _scale_factor(sample, refit, n)
                v = _solve_log_scales(sample, refit, n)
                scaled_factor, scaled_bits = _scale_factor(sample, refit, n, v)
                refit = (refit, refit_factor, v, scaled_factor)
                gain += (bits - refit_bits) * observer.every * share
                scale_gain += (refit_bits - scaled_bits) * observer.every * share
            keys.append((n, (w, factor), refit))
        header_bits = 8 * len(base64.b64encode(bytes(HIDDEN_STAGES * 3 * self.net.width)))
        use = hidden and gain >= HIDDEN_MARGIN * header_bits  # on a small image they do not pay for their header
        use_scale = use and scale_gain >= HIDDEN_MARGIN * header_bits
        fit, factors, means, scales = [], [], [], []
        for n, (w, factor), refit in keys:
            if use and refit:
                w, factor, v, scaled_factor = refit
                means.append(w[n:])
                if use_scale:
                    factor = scaled_factor
                    scales.append(v)
            fit += [int(b) for b in w[:n]]
            factors.append(factor)
        return fit, factors, np.stack(means) if use else None, np.stack(scales) if use_scale else None

    # --- distributions and values, shared by both directions ------------------------------
    def _padded(self, th: int, tw: int) -> tuple[int, int]:
        """A tile's size padded to a multiple of 2**(levels + 1)."""
        m = self.multiple
        return -(-th // m) * m, -(-tw // m) * m

    @staticmethod
    def _fixed(tile: np.ndarray | None, ph: int, pw: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The tile padded with 128 (all 128 for a decoder), and as exact-mode (x - 128) / 128."""
        sym = torch.full((1, 3, ph, pw), 128.0, dtype=torch.float64)
        if tile is not None:
            sym[0, :, : tile.shape[0], : tile.shape[1]] = torch.from_numpy(np.array(tile)).permute(2, 0, 1).double()
        return sym, (sym - 128) * (exact.ONE / 128)


@dataclass(frozen=True)
class LatentGrid:
    """The latents' discretization: bins of width 2**-zbin on [-Z_LIMIT_BINS, Z_LIMIT_BINS], a
    power of two so that every bin is an exact fixed-point value for the exact networks."""
    zbin: int

    @property
    def delta(self) -> float:
        return 2.0**-self.zbin

    @property
    def half(self) -> int:
        return Z_LIMIT_BINS << self.zbin  # indices in [-half, half]

    def dist(self, mu: torch.Tensor, ls: torch.Tensor) -> DiscretizedGaussian:
        """A latent Gaussian (exact-mode mean and log-scale) on the bins."""
        means = (mu / (exact.ONE * self.delta)).numpy().ravel()
        scales = (exact.fixed_exp(ls) / self.delta).numpy().ravel()
        return DiscretizedGaussian(means, scales, -self.half, self.half)

    def index(self, mu: torch.Tensor) -> np.ndarray:
        """The bin index nearest an exact-mode mean: a latent taken at its mean, uncoded."""
        return torch.round(mu / (exact.ONE * self.delta)).clamp_(-self.half, self.half).numpy()

    def fixed(self, idx: np.ndarray) -> torch.Tensor:
        """Bin indices as exact-mode values."""
        return torch.from_numpy(np.asarray(idx, dtype=np.float64)) * (exact.ONE * self.delta)

    def prior(self, shape) -> DiscretizedGaussian:
        """p(z2) = N(0, 1) on the bins."""
        n = math.prod(shape)
        return DiscretizedGaussian(np.zeros(n), np.full(n, 1 / self.delta), -self.half, self.half)


class Calibration(ScaleCalibration):
    """`bitsback`'s contexts for the online scale calibration (`entropy.calibration`), over one
    tile (tiles are chained on a stack, so the decoder meets them last first):

        context = (channel, the predicted scale in half-octaves, the mean normalised error of
                   the same colour at the pixels around it and of the colours before it at
                   the pixel itself, all already coded, in half-octaves)

    "Around": the 3 x 3 neighbourhood on the grid of the stage's level (its spacing), where the
    earlier stages put pixels on every side; the coarsest stage has none. Measured on kodim23,
    01, 13 and 05 with the weights before calibration: 3.426 bpsp without it, 3.402 with the
    neighbours alone, 3.397 with the pixel's own earlier colours too."""

    SCALE_BINS = scale_bins(LOG_SCALE_X)

    def __init__(self, net: BitsBackNet, ph: int, pw: int):
        super().__init__(3 * ENERGY_BINS * self.SCALE_BINS, floor=LOG_SCALE_X[0])
        self.net = net
        # u of the coded sub-pixels per colour, and 1 where coded: one tensor, pooled at once
        self.errors_and_known = torch.zeros(1, 4, ph, pw, dtype=torch.float64)
        self.errors, self.known = self.errors_and_known[:, :3], self.errors_and_known[:, 3:]

    def start_stage(self, k: int) -> None:
        """The window sums of the stage's pixels, once for its three colours."""
        level, dy, dx = self.net.stage_grid(k)
        self._here = self.net.stage_pixels(self.errors, k)[0]  # the stage's own u, colour by colour
        if self.net.stages[k][1] is None:
            rows, cols = self.net.stage_pixels(self.known, k).shape[-2:]
            self._totals = torch.zeros(3, rows, cols, dtype=torch.float64)
            self._counts = torch.zeros(rows, cols, dtype=torch.float64)
            return
        s = 2**level

        grid = F.pad(self.errors_and_known[:, :, ::s, ::s], (1, 1, 1, 1))
        sums = F.avg_pool2d(grid[:, :, dy:, dx:], 3, stride=2, divisor_override=1)[0]
        self._totals, self._counts = sums[:3], sums[3]

    def contexts(self, c: int, log_scale: torch.Tensor) -> torch.Tensor:
        """The context of each sub-pixel of colour c of the stage, (rows, cols)."""
        energy = energy_level(self._totals[c] + self._here[:c].sum(0), self._counts + c)
        return (c * ENERGY_BINS + energy) * self.SCALE_BINS + scale_level(log_scale[0, 0], LOG_SCALE_X[0])

    def remember(self, k: int, c: int, u: torch.Tensor, coded: torch.Tensor) -> None:
        """Colour c of stage k was coded (where `coded`), missing by `u` (exact units, both
        (1, rows, cols)): the error map that the next stages' contexts read."""
        u, coded = u[0], coded[0]
        errors = self.net.stage_pixels(self.errors, k)
        errors[0, c] = u if coded.all() else torch.where(coded, u, 0)  # all: a tile inside the image
        if c == 2:
            self.net.stage_pixels(self.known, k)[0, 0] = coded.double()


@dataclass
class ImageFit:
    """What a file's header says of its image (`BitsBackCodec.image_fit`): per (stage, colour
    c), c + 1 terms that move the means, and (files since "fit_scale") a factor on the scales,
    all in 1/BIAS_UNIT."""

    terms: list[list[int]]
    scales: list[int] | None = None
    hidden: torch.Tensor | None = None  # "fit_hidden", (HIDDEN_STAGES * 3, width)
    hidden_scale: torch.Tensor | None = None  # "fit_hidden_scale", the same shape


class _Observer:
    """Stands in for a `Lockstep` io that codes nothing: it hands the symbols back and gathers,
    per (stage, colour c), the normal equations of a least-squares fit of their signed errors
    by a constant and the signed errors of the colours before (from stage `hidden_from` on,
    and the channels of the stage's hidden layer, which `_pixels` sets as `hidden`), and every
    `every`-th sub-pixel (call `call` of a tile is stage call // 3, colour call % 3)."""

    def __init__(self, stages: int, every: int = 1, hidden_from: int | None = None):
        self.sums = [None] * (3 * stages)
        self.samples = [[] for _ in range(3 * stages)]
        self.every, self.call, self._before = every, 0, []
        self.hidden_from, self.hidden = stages if hidden_from is None else hidden_from, None

    def code(self, dist, symbols: np.ndarray) -> np.ndarray:
        e = np.clip((symbols - dist.means) / dist.scales, -SIGNED_CLAMP, SIGNED_CLAMP)
        if self.call % 3 == 0:
            self._before = []
        x = np.stack([np.ones_like(e)] + self._before, 1)
        if self.call // 3 >= self.hidden_from:
            x = np.concatenate([x, self.hidden], 1)
        if self.sums[self.call] is None:
            self.sums[self.call] = (np.zeros((x.shape[1], x.shape[1])), np.zeros(x.shape[1]))
        xtx, xty = self.sums[self.call]
        xtx += x.T @ x
        xty += x.T @ e
        pick = slice(None, None, self.every)
        self.samples[self.call].append((symbols[pick].astype(np.float64), dist.means[pick], dist.scales[pick], x[pick]))
        self._before.append(e)
        self.call += 1
        return symbols


def _solve(xtx: np.ndarray, xty: np.ndarray, n: int) -> np.ndarray:
    """A fit's integers from its normal equations: the first n terms in 1/BIAS_UNIT (ridge 1,
    against empty stages), the hidden layer's after them in 1/HIDDEN_UNIT (ridge HIDDEN_RIDGE)."""
    solution = np.linalg.solve(xtx + np.diag([1.0] * n + [HIDDEN_RIDGE] * (len(xty) - n)), xty)
    return np.concatenate([np.clip(np.round(solution[:n] * BIAS_UNIT), -BIAS_LIMIT, BIAS_LIMIT),
                           np.clip(np.round(solution[n:] * HIDDEN_UNIT), -HIDDEN_LIMIT, HIDDEN_LIMIT)])


def _moved(sample: tuple, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A (stage, colour)'s sample (symbols, means, scales, regressors): its symbols, means moved
    by the fit `w` (`_solve`), scales and hidden layer (n: the fit's terms before the hidden ones)."""
    symbols, means, scales, regressors = sample
    means = means + (regressors[:, :n] @ w[:n] / BIAS_UNIT + regressors[:, n:len(w)] @ w[n:] / HIDDEN_UNIT) * scales
    return symbols, means, scales, regressors[:, n:]


def _solve_log_scales(sample: tuple | None, w: np.ndarray, n: int) -> np.ndarray:
    """The "fit_hidden_scale" integers of a (stage, colour): the multiples of its hidden layer
    (and a constant, left to "fit_scale") on the log-scales that code its sample in the fewest
    bits under the means moved by `w`, by L-BFGS, ridge HIDDEN_SCALE_RIDGE."""
    from .net import laplace_logp

    if not sample:
        return np.zeros(len(w) - n)
    symbols, means, scales, hidden = (torch.from_numpy(a) for a in _moved(sample, w, n))
    z = torch.cat([torch.ones(len(symbols), 1, dtype=torch.float64), hidden], 1)
    v = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([v], max_iter=20, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = -laplace_logp(symbols, means, scales * torch.exp(z @ v)).sum() + HIDDEN_SCALE_RIDGE * v[1:].square().sum()
        value.backward()
        return value

    opt.step(loss)
    return np.clip(np.round(v.detach().numpy()[1:] * HIDDEN_SCALE_UNIT), -HIDDEN_LIMIT, HIDDEN_LIMIT)


def _scale_factor(sample: tuple | None, w: np.ndarray, n: int, v: np.ndarray | None = None) -> tuple[int, float]:
    """The factor of SCALE_CHOICES that codes the `sample` of a (stage, colour)'s sub-pixels in
    the fewest bits under the means moved by the fit `w` (`_solve`) and the log-scales by `v`
    (`_solve_log_scales`), and those bits."""
    if not sample:
        return BIAS_UNIT, 0.0
    symbols, means, scales, hidden = _moved(sample, w, n)
    if v is not None:
        scales = scales * np.exp(hidden @ v / HIDDEN_SCALE_UNIT)
    bits = [DiscretizedLaplace(means, scales * f / BIAS_UNIT, 0, 255).bits(symbols).sum() for f in SCALE_CHOICES]
    best = int(np.argmin(bits))
    return SCALE_CHOICES[best], float(bits[best])


def _tile_count(shape, tile: int) -> int:
    """How many tiles of `tile` x `tile` cover an image of `shape` (height, width, ...)."""
    return -(-shape[0] // tile) * -(-shape[1] // tile)
