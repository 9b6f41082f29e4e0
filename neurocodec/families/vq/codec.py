"""`vq`: lossy image codec from a residual-VQ VAE whose code indices a learned prior codes.

Coding a tile (at most `tile` x `tile` pixels, replicate-padded to a multiple of 16):

    x --g_a--> z --RVQ, first n stages--> indices (n, h, w)       (encoder only, float)
    for each stage s < n, on a checkerboard: anchors, then the others,
        each index under Categorical(IndexPrior(...)) (exact)    (coded with the range coder)
    x_hat = g_s(sum of the stages' code vectors)                 (float)

The quality picks n, the number of stages (`stages_for`): ceil(quality * S / 100).

Determinism. The decoder must rebuild the prior's distributions exactly. The prior runs in
neurocodec's exact runtime on the code vectors rounded to its fixed-point grid, and its
logits become probabilities through the fixed exp table (`exact.probabilities`), so they are
the same on every machine. g_a and g_s run in ordinary float arithmetic: a reconstructed
pixel may differ by one level between machines or thread counts; the indices, and so the
file, never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np
import torch
import torch.nn.functional as F

from ... import container, exact, limits, registry
from ...codec import tile_grid
from ...compose import LikelihoodCodec, Lockstep
from ...entropy import Categorical
from ..context.net import anchors
from .net import STRIDE, VQVAE, IndexPrior

TRAINING_ONLY = ("rvq.ema_count", "rvq.ema_sum", "rvq.started")  # the codebooks' running sums: not shipped
MAX_TILE = 2048  # the largest tile a file may ask for (the synthesis runs on a whole tile)
# The most pixels a tile may hold per byte of its chunk (LikelihoodCodec.samples_per_chunk_byte).
# Measured (fuzz/measure_bounds.py --codecs vq --size 1024) with the shipped weights at quality
# 1 (one stage: the fewest bits), flat images are the most compressible: black 547 pixels a
# byte, grey 391, white 353 (256 x 256: 512, 364, 349). 2**12 leaves a margin of 7.5; decoding
# one stage takes about 3 us a pixel, so a chunk asks for at most about 12 ms of work per byte.
PIXELS_PER_CHUNK_BYTE = 1 << 12


def stages_for(quality: int, stages: int) -> int:
    """How many RVQ stages code an image at `quality` (1..100): 1 to `stages`, evenly."""
    return max(1, min(stages, math.ceil(quality * stages / 100)))


@dataclass
class VQConfig:
    arch: dict
    tile: int = 1024
    default_quality: int = 50
    bench_qualities: list = field(default_factory=list)


@registry.family("vq", spec="neurocodec.families.vq.spec:VQSpec", config=VQConfig)
class VQCodec(LikelihoodCodec):
    """Parts are tiles, each one `Lockstep`: the stages' indices, checkerboard by checkerboard."""

    exact = False  # g_a and g_s run in float on all threads; the prior runs in exact mode below
    part_threads = None  # a tile is a few large convolutions, where torch's threads pay
    samples_per_chunk_byte = PIXELS_PER_CHUNK_BYTE
    digest_optional = False  # every vq file has carried one

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, lossless=False)
        self.net = VQVAE(**config["arch"])
        missing, unexpected = self.net.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
        if unexpected or set(missing) - set(TRAINING_ONLY):
            raise ValueError(f"vq weights do not fit the network: missing {missing}, unexpected {unexpected}")
        self.net.eval()
        self.tile = int(config.get("tile", 1024))
        self.default_quality = int(config.get("default_quality", 50))
        self.bench_qualities = tuple(config.get("bench_qualities", ()))
        self.books_fixed = exact.to_fixed(self.net.rvq.codebooks)  # (S, K, D) on the prior's grid

    def params(self, x, quality: int) -> dict:
        return {"quality": quality, "tile": self.tile}

    def check_params(self, params: dict) -> dict:
        limits.header_int(params, "quality", 1, 100, self.name)
        limits.header_int(params, "tile", 16, MAX_TILE, self.name)
        return params

    def part_step(self, shapes, params) -> Lockstep:
        n = stages_for(params["quality"], self.net.stages)
        h, w = shapes[0][:2]
        return Lockstep(lambda io, tiles: self._tile(io, n, h, w, tiles), name="tile")

    def _tile(self, io, n: int, h: int, w: int, tiles) -> list[np.ndarray]:
        known = None if io.decoding else analyse(self.net, tiles[0], n)
        indices, _ = code_indices(io, self.net.prior, self.books_fixed, n, -(-h // STRIDE), -(-w // STRIDE), known)
        if not io.decoding:
            return tiles
        wanted = getattr(self._thread, "latents", None)
        if wanted is not None:  # `latent`: the tile's z_hat, and no synthesis
            wanted.append(self.z_hat(indices))
            return [np.zeros((h, w, 3), dtype=np.uint8)]
        return [self.synthesize(indices, h, w)]

    def latent(self, blob: bytes | container.Container) -> torch.Tensor:
        """The latent z_hat (1, D, ceil(H/16), ceil(W/16)) of a vq file's image from its coded
        indices alone: every check of a full decode (the header, the chunks, the symbols
        digest), without the synthesis. What `neurocodec.perceptual.latent` embeds."""
        box = blob if isinstance(blob, container.Container) else container.unpack(blob)
        self._thread.latents = []
        try:
            image = self.decode(box)  # parts are coded in this thread (no parallel_parts)
            tiles = self._thread.latents
        finally:
            del self._thread.latents
        height, width = image.shape[:2]
        out = torch.zeros(1, self.net.dim, -(-height // STRIDE), -(-width // STRIDE))
        for (r, c, _, _), z in zip(tile_grid(height, width, box.header.params["tile"]), tiles):
            out[:, :, r // STRIDE : r // STRIDE + z.shape[2], c // STRIDE : c // STRIDE + z.shape[3]] = z
        return out

    @torch.no_grad()
    def z_hat(self, indices: torch.Tensor) -> torch.Tensor:
        """(1, D, h, w): the sum of the code vectors at `indices` (n, h, w), in float."""
        books = self.net.rvq.codebooks
        return sum(books[s][indices[s]] for s in range(indices.shape[0])).permute(2, 0, 1)[None]

    @torch.no_grad()
    def synthesize(self, indices: torch.Tensor, h: int, w: int) -> np.ndarray:
        x_hat = self.net.g_s(self.z_hat(indices))[0, :, :h, :w]
        return (x_hat.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def code_indices(io, prior: IndexPrior, books_fixed: torch.Tensor, n: int, h: int, w: int,
                 known: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Code the first n stages' indices (n, h, w) of a latent map of h x w positions, stage by
    stage, each on a checkerboard (anchors, then the others), in exact mode; `known` holds
    the encoder's indices, None when decoding. `books_fixed` (S, K, D): the codebooks on the
    prior's fixed-point grid. Returns the indices and the sum of their code vectors on that
    grid (1, D, h, w)."""
    def vectors(s: int, idx: torch.Tensor) -> torch.Tensor:  # (1, D, h, w) code vectors of stage s
        return books_fixed[s][idx].permute(2, 0, 1)[None]

    before = torch.zeros(1, books_fixed.shape[2], h, w, dtype=torch.float64)
    mask = anchors(before) * exact.ONE
    first = mask[0, 0].bool()
    indices = torch.zeros(n, h, w, dtype=torch.int64)
    with torch.no_grad(), exact.exact_mode():
        for s in range(n):
            with io.at(f"stage {s}"):
                logits, others = prior.both_passes(before, s)
                for half, where in (("anchors", first), ("others", ~first)):
                    if half == "others":
                        logits = others(vectors(s, indices[s]) * first, mask)
                    probs = exact.probabilities(logits[0].permute(1, 2, 0)[where], dim=1)
                    with io.at(half):
                        sym = io.code(Categorical(probs.numpy()), None if known is None else known[s][where].numpy())
                    indices[s][where] = torch.as_tensor(np.asarray(sym, dtype=np.int64))
                before = before + vectors(s, indices[s])
    return indices, before


@torch.no_grad()
def analyse(net: VQVAE, x: np.ndarray, n: int) -> torch.Tensor:
    """The first n stages' indices (n, h, w) of an image: what only the encoder has."""
    h, w = x.shape[:2]
    t = torch.tensor(x).permute(2, 0, 1)[None].float() / 255.0
    t = F.pad(t, (0, -w % STRIDE, 0, -h % STRIDE), mode="replicate")
    _, indices, _ = net.rvq(net.g_a(t), n)
    return indices[:, 0]


def default_config(name: str, net: VQVAE) -> dict:
    stages = net.stages
    return {
        "name": name,
        "family": "vq",
        "modality": "image",
        "lossless": False,
        "arch": {"N": net.N, "dim": net.dim, "codes": net.codes, "stages": stages, "prior_width": net.prior_width},
        "tile": 1024,
        "default_quality": 50,
        # one quality per stage count: the highest that still codes with that many stages
        "bench_qualities": [math.floor(100 * s / stages) for s in range(1, stages + 1)],
    }
