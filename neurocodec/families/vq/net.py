"""A VQ-VAE with residual vector quantization, and a learned prior over its code indices.

    x --g_a--> z (D channels, 1/16 of the size) --RVQ, S stages--> indices (S, h, w)
    z_hat = codebook_1[i_1] + ... + codebook_n[i_n]  --g_s--> x_hat

Residual quantization (as SoundStream): stage s quantizes what stages 1..s-1 left, each with
its own codebook of K vectors. Training drops the later stages at random (quantizer dropout),
so every prefix of n stages is a working code: `n` is the codec's rate, S operating points
from one network. Codebooks learn by exponential moving averages (VQ-VAE's EMA update,
which needs no codebook loss); they start on residuals of the first batch, and a code unused
for long is restarted on a random residual of the batch (dead-code restart), so the codebooks
stay in use.

The prior `IndexPrior` gives each index a categorical distribution over K codes, stage after
stage and within a stage in two checkerboard passes: the anchors ((row + column) even) from
the latent the earlier stages already give (every position of it), then the other half from
that and the anchors' codes. Every pass is one batch over the whole map, as in the
`context` codec. The prior is built from `neurocodec.exact` layers, so the decoder rebuilds
its distributions bit for bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ... import exact
from ..context.net import anchors
from ..hyperprior.layers import analysis, synthesis

STRIDE = 16  # pixels per latent position, each way


class ResidualVQ(nn.Module):
    """`stages` codebooks of `codes` vectors of `dim` values, learned by EMA."""

    def __init__(self, stages: int, codes: int, dim: int, decay: float = 0.99, restart_below: float = 0.03):
        super().__init__()
        self.stages, self.codes, self.dim, self.decay, self.restart_below = stages, codes, dim, decay, restart_below
        books = torch.randn(stages, codes, dim) * 0.1
        self.register_buffer("codebooks", books)
        self.register_buffer("ema_count", torch.ones(stages, codes))
        self.register_buffer("ema_sum", books.clone())
        self.register_buffer("started", torch.zeros(stages, dtype=torch.bool))

    def nearest(self, r: torch.Tensor, stage: int) -> torch.Tensor:
        """Index of the code of `stage` nearest to each row of r (n, dim)."""
        book = self.codebooks[stage]
        d = (r * r).sum(1, keepdim=True) - 2 * r @ book.T + (book * book).sum(1)[None]
        return d.argmin(1)

    def forward(self, z: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z quantized by the first n stages with straight-through gradients, the indices
        (n, B, h, w), the commitment loss). Updates the codebooks in training mode."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        residual, q, idx = flat, torch.zeros_like(flat), []
        for s in range(n):
            i = self.nearest(residual.detach().float(), s)
            if self.training:
                self._update(s, residual.detach().float(), i)
            e = self.codebooks[s][i].to(flat.dtype)
            q, residual = q + e, residual - e
            idx.append(i.view(b, h, w))
        commit = ((flat - q.detach()) ** 2).mean()
        q = flat + (q - flat).detach()
        return q.view(b, h, w, d).permute(0, 3, 1, 2), torch.stack(idx), commit

    @torch.no_grad()
    def _update(self, s: int, r: torch.Tensor, i: torch.Tensor) -> None:
        if not self.started[s]:  # a stage's first batch: its codes start on residuals of it
            books = r[torch.randint(0, r.shape[0], (self.codes,), device=r.device)]
            self.codebooks[s] = books + 1e-3 * r.std() * torch.randn_like(books)
            self.ema_sum[s], self.ema_count[s] = self.codebooks[s], 1.0
            self.started[s] = True
            return
        onehot = F.one_hot(i, self.codes).to(r.dtype)
        self.ema_count[s].mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_sum[s].mul_(self.decay).add_(onehot.T @ r, alpha=1 - self.decay)
        n = self.ema_count[s].sum()
        count = (self.ema_count[s] + 1e-5) / (n + self.codes * 1e-5) * n  # Laplace smoothing
        self.codebooks[s].copy_(self.ema_sum[s] / count[:, None])
        dead = self.ema_count[s] < self.restart_below
        if dead.any():  # restart unused codes on residuals of this batch
            pick = torch.randint(0, r.shape[0], (int(dead.sum()),), device=r.device)
            self.codebooks[s][dead] = r[pick]
            self.ema_sum[s][dead] = r[pick]
            self.ema_count[s][dead] = 1.0

    def perplexity(self) -> list[float]:
        """exp(entropy) of each stage's code use (EMA counts): K if all codes are used evenly."""
        p = self.ema_count / self.ema_count.sum(1, keepdim=True)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(1)).tolist()


class IndexPrior(nn.Module):
    """Logits over the K codes of one stage at every position, from what the decoder has:
    the latent of the earlier stages (D channels), the anchors' code vectors of this stage
    with a mask (zero in the first pass), and the stage (one-hot)."""

    def __init__(self, dim: int, codes: int, stages: int, width: int = 128):
        super().__init__()
        self.stages = stages
        self.net = nn.Sequential(
            exact.Conv2d(2 * dim + 1 + stages, width, 3, padding=1), exact.LeakyReLU(),
            exact.Conv2d(width, width, 3, padding=1), exact.LeakyReLU(),
            exact.Conv2d(width, codes, 1),
        )

    def _onehot(self, like: torch.Tensor, stage: int) -> torch.Tensor:
        onehot = torch.zeros(like.shape[0], self.stages, *like.shape[2:], dtype=like.dtype, device=like.device)
        onehot[:, stage] = exact.ONE if exact.is_exact() else 1.0
        return onehot

    def forward(self, before: torch.Tensor, anchor_vectors: torch.Tensor, mask: torch.Tensor, stage: int) -> torch.Tensor:
        """`mask` (B, 1, h, w) is 1 where `anchor_vectors` holds a code (in exact mode ONE)."""
        return self.net(torch.cat([before, anchor_vectors, mask, self._onehot(before, stage)], 1))

    def both_passes(self, before: torch.Tensor, stage: int):
        """Exact mode, for coding: (the anchors pass's logits, a function from the anchors'
        vectors and mask to the others pass's logits), equal to `forward`'s but computing the
        first layer's sum over `before` (most of the work) once for both passes. Integer
        sums in float64 are exact in any order, so splitting the sum changes no value."""
        first, rest = self.net[0], self.net[1:]
        w, b = first.exact_weights()
        d = before.shape[1]
        shared = F.conv2d(before, w[:, :d], padding=1) + F.conv2d(self._onehot(before, stage), w[:, 2 * d + 1 :], padding=1)

        def others(anchor_vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            acc = shared + F.conv2d(torch.cat([anchor_vectors, mask], 1), w[:, d : 2 * d + 1], padding=1)
            return rest(first._round(acc, b))

        return rest(first._round(shared, b)), others


class VQVAE(nn.Module):
    def __init__(self, N: int = 128, dim: int = 64, codes: int = 1024, stages: int = 8, prior_width: int = 128):
        super().__init__()
        self.N, self.dim, self.codes, self.stages, self.prior_width = N, dim, codes, stages, prior_width
        self.g_a, self.g_s = analysis(N, dim), synthesis(N, dim)  # the hyperprior's layout
        self.rvq = ResidualVQ(stages, codes, dim)
        self.prior = IndexPrior(dim, codes, stages, prior_width)

    def prior_bits(self, indices: torch.Tensor) -> torch.Tensor:
        """-log2 p of every index (n, B, h, w) under the prior, both checkerboard passes,
        summed per image (B,); the prior learns from fixed codes (no gradient reaches g_a)."""
        n, b, h, w = indices.shape
        before = torch.zeros(b, self.dim, h, w, device=indices.device)
        first = anchors(before)
        bits = torch.zeros(b, device=indices.device)
        books = self.rvq.codebooks.detach()
        for s in range(n):
            vectors = books[s][indices[s]].permute(0, 3, 1, 2)
            target = indices[s]
            zeros = torch.zeros_like(vectors)
            logits_a = self.prior(before, zeros, torch.zeros_like(first).expand(b, 1, h, w), s)
            logits_b = self.prior(before, vectors * first, first.expand(b, 1, h, w), s)
            nll = torch.where(first[0].bool(), F.cross_entropy(logits_a.float(), target, reduction="none"),
                              F.cross_entropy(logits_b.float(), target, reduction="none"))
            bits = bits + nll.flatten(1).sum(1) / math.log(2)
            before = before + vectors
        return bits

    def forward(self, x: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
        """x (B, 3, H, W) in [0, 1], H and W multiples of 16; n stages."""
        z = self.g_a(x)
        z_hat, indices, commit = self.rvq(z, n)
        return {"x_hat": self.g_s(z_hat), "indices": indices, "commit": commit,
                "bits": self.prior_bits(indices)}
