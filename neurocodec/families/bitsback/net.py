"""The `bitsback` network: a two-level VAE whose likelihood is a polyphase pyramid.

Latents (Bit-Swap's Markov chain; z1 at 1/2**levels resolution, z2 at half that):

    q(z1|x)  q(z2|z1)      p(z2) = N(0, 1)   p(z1|z2)   p(x|z1)

p(x|z1) codes a tile as a pyramid of polyphase sub-images, coarse to fine. x_l is x
subsampled by 2**l. The coarsest x_L is coded from the latent features only; then, for each
finer level l, the three other 2x2 phases of x_l ((0,1), (1,0), (1,1)) are coded one after
the other, each conditioned on x_{l+1}, the phases before it and the latent features. Within
a pixel, G's mean depends linearly on R, and B's on R and G (PixelCNN++). Each sub-pixel is
a discretized Laplace on 0..255. So decoding runs 1 + 3*levels small networks, each once,
and stays fast, while most pixels see their decoded neighbours on every side.

Every layer is `exact.Conv2d`/`exact.leaky_relu`: the same code trains in float mode and
codes in exact mode (inputs from `to_fixed`, scales from `fixed_exp`), where the outputs are
bit-identical on any machine. Values below are "normalized": pixels (x - 128) / 128, latents
as they are; in exact mode they are integers times 2**-ACT_BITS.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import exact

LOG_SCALE_Z = (-3.5, 2.0)  # clamp of latent log-scales (normalized units)
LOG_SCALE_X = (-7.0, 0.0)  # clamp of pixel log-scales, normalized (x128: 0.12 .. 128 levels)
Z_LIMIT = 15.0  # latent means are clamped to +-Z_LIMIT
X_MEAN = (-1.0, 127 / 128)  # pixel means are clamped to the support 0..255


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> exact.Conv2d:
    return exact.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _mlp(cin: int, hidden: int, cout: int, depth: int, last_k: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(cin, hidden), exact.LeakyReLU()]
    for _ in range(depth - 1):
        layers += [_conv(hidden, hidden), exact.LeakyReLU()]
    layers.append(_conv(hidden, cout, last_k))
    return nn.Sequential(*layers)


def _shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[i, j] = t[i + dy, j + dx], the last row/column repeated at the border."""
    return F.pad(t, (0, dx, 0, dy), mode="replicate")[:, :, dy:, dx:]


def unit() -> float:
    """The number 1.0 in the current mode."""
    return exact.ONE if exact.is_exact() else 1.0


def clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    u = unit()
    return x.clamp(lo * u, hi * u)


def exp(x: torch.Tensor) -> torch.Tensor:
    """exp of a log-scale: a table in exact mode (returns plain values, not fixed point)."""
    return exact.fixed_exp(x) if exact.is_exact() else torch.exp(x)


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling (exact in both modes)."""
    if factor == 1:
        return x
    return x.repeat_interleave(factor, 2).repeat_interleave(factor, 3)


def phase(x: torch.Tensor, level: int, dy: int, dx: int) -> torch.Tensor:
    """Phase (dy, dx) of x_level, i.e. x[.., (2i+dy) 2**level, (2j+dx) 2**level]."""
    s = 2**level
    return x[:, :, dy * s :: 2 * s, dx * s :: 2 * s]


PHASES = ((0, 1), (1, 0), (1, 1))


class BitsBackNet(nn.Module):
    def __init__(self, levels: int = 3, z1: int = 8, z2: int = 8, feat: int = 16, hidden: int = 64,
                 width: int = 32, depth: int = 2, interp: bool = True):
        super().__init__()
        self.levels, self.c1, self.c2, self.feat, self.interp = levels, z1, z2, feat, interp
        self.hidden, self.width, self.depth = hidden, width, depth
        s = 2**levels
        self.q1 = _mlp(3 * s * s, hidden, 2 * z1, 2)
        self.q2 = nn.Sequential(_conv(z1, hidden, 3, 2), exact.LeakyReLU(), _conv(hidden, 2 * z2))
        self.p1_in = _conv(z2, 4 * hidden)  # then pixel_shuffle(2): to z1's resolution
        self.p1_out = nn.Sequential(exact.LeakyReLU(), _conv(hidden, hidden), exact.LeakyReLU(), _conv(hidden, 2 * z1))
        self.f = _mlp(z1, hidden, feat, 1, 3)
        # stage 0: the coarsest x_L; then three phases per level, coarse to fine
        self.stages = [(levels, None)] + [(lv, p) for lv in range(levels - 1, -1, -1) for p in range(3)]
        self.nets = nn.ModuleList(
            _mlp(feat + (0 if p is None else 3 * (p + 1)), width, 9, depth) for _, p in self.stages
        )
        if interp:  # start from a sensible pixel model: unit-ish scales, G and B follow R
            with torch.no_grad():
                for net in self.nets:
                    net[-1].bias[3:6] = -3.0
                    net[-1].bias[6:9] = torch.tensor([0.8, 0.3, 0.6])

    def config(self) -> dict:
        return {"levels": self.levels, "z1": self.c1, "z2": self.c2, "feat": self.feat,
                "hidden": self.hidden, "width": self.width, "depth": self.depth, "interp": self.interp}

    # --- latent distributions: (mean, log-scale), both clamped --------------------------
    @staticmethod
    def _gauss(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, ls = out.chunk(2, 1)
        return clamp(mu, -Z_LIMIT, Z_LIMIT), clamp(ls, *LOG_SCALE_Z)

    def posterior1(self, x: torch.Tensor):
        return self._gauss(self.q1(F.pixel_unshuffle(x, 2**self.levels)))

    def posterior2(self, z1: torch.Tensor):
        return self._gauss(self.q2(z1))

    def prior1(self, z2: torch.Tensor):
        return self._gauss(self.p1_out(F.pixel_shuffle(self.p1_in(z2), 2)))

    def features(self, z1: torch.Tensor) -> torch.Tensor:
        return exact.leaky_relu(self.f(z1))

    # --- the pixel pyramid --------------------------------------------------------------
    def stage_grid(self, k: int) -> tuple[int, int, int]:
        """(level, dy, dx): stage k codes phase (dy, dx) of x_level at the grid of x_{level+1}
        (stage 0: all of x_L)."""
        level, p = self.stages[k]
        return (level, 0, 0) if p is None else (level, *PHASES[p])

    def stage_pixels(self, x: torch.Tensor, k: int) -> torch.Tensor:
        level, dy, dx = self.stage_grid(k)
        if self.stages[k][1] is None:
            return x[:, :, :: 2**level, :: 2**level]
        return phase(x, level, dy, dx)

    def stage_context(self, x: torch.Tensor, k: int) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """The decoded sub-images stage k sees, and the mean baseline (x_{level+1})."""
        level, p = self.stages[k]
        if p is None:
            return [], None
        known = [phase(x, level, 0, 0)] + [phase(x, level, *PHASES[q]) for q in range(p)]
        if not self.interp:
            return known, known[0]
        a = known[0]
        if p == 0:  # between two known pixels of a row
            return known, (a + _shift(a, 0, 1)) / 2
        if p == 1:  # between two of a column
            return known, (a + _shift(a, 1, 0)) / 2
        up, left = known[1], known[2]  # (1, 1): its four direct neighbours are known
        return known, (up + _shift(up, 1, 0) + left + _shift(left, 0, 1)) / 4

    def stage_out(self, k: int, feat: torch.Tensor, known: list[torch.Tensor]) -> torch.Tensor:
        return self.stage_head(k, self.stage_hidden(k, feat, known))

    def stage_hidden(self, k: int, feat: torch.Tensor, known: list[torch.Tensor]) -> torch.Tensor:
        """Stage k's last hidden layer (`width` channels at the stage's grid), before its 1x1 head."""
        level, p = self.stages[k]
        f = upsample(feat, 2 ** (self.levels - level - (0 if p is None else 1)))
        return self.nets[k][:-1](torch.cat([f, *known], 1))

    def stage_head(self, k: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.nets[k][-1](hidden)

    def pixel_params(self, out: torch.Tensor, base: torch.Tensor | None, x: torch.Tensor, c: int):
        """(mean, log-scale) of channel c, given the true/decoded channels < c of `x`: the
        baseline plus a correction plus learned multiples of the earlier channels' residuals."""
        u = unit()
        mean = out[:, c : c + 1] + (0 if base is None else base[:, c : c + 1])
        coeffs = {1: [(6, 0)], 2: [(7, 0), (8, 1)]}.get(c, [])
        for j, src in coeffs:
            res = x[:, src : src + 1] - (base[:, src : src + 1] if self.interp and base is not None else 0)
            prod = out[:, j : j + 1] * res / u
            mean = mean + (torch.floor(prod + 0.5) if exact.is_exact() else prod)
        return clamp(mean, *X_MEAN), clamp(out[:, 3 + c : 4 + c], *LOG_SCALE_X)

    # --- training -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Negative ELBO terms in bits per image (float mode), x normalized (B,3,H,W) with
        H, W multiples of 2**(levels+1)."""
        mu1, ls1 = self.posterior1(x)
        z1 = mu1 + ls1.exp() * torch.randn_like(mu1)
        mu2, ls2 = self.posterior2(z1)
        z2 = mu2 + ls2.exp() * torch.randn_like(mu2)
        mup, lsp = self.prior1(z2)
        kl2 = gauss_kl(mu2, ls2, torch.zeros_like(mu2), torch.zeros_like(ls2))
        kl1 = gauss_kl(mu1, ls1, mup, lsp)
        feat = self.features(z1)
        nll = 0.0
        for k in range(len(self.stages)):
            known, base = self.stage_context(x, k)
            target = self.stage_pixels(x, k)
            out = self.stage_out(k, feat, known)
            for c in range(3):
                m, ls = self.pixel_params(out, base, target, c)
                nll = nll - laplace_logp(target[:, c : c + 1] * 128 + 128, m * 128 + 128, ls.exp() * 128).flatten(1).sum(1)
        ln2 = math.log(2)
        return {"x": nll / ln2, "z1": kl1.flatten(1).sum(1) / ln2, "z2": kl2.flatten(1).sum(1) / ln2}


def gauss_kl(mq, lq, mp, lp):
    """KL(N(mq, e^lq) || N(mp, e^lp)) in nats, elementwise."""
    return lp - lq + (torch.exp(2 * lq) + (mq - mp) ** 2) / (2 * torch.exp(2 * lp)) - 0.5


def laplace_logp(x: torch.Tensor, m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log P(x) of a Laplace(m, b) integrated over [x-1/2, x+1/2], the outer bins 0 and 255
    taking the tails, as constriction's QuantizedLaplace(0, 255) codes it."""
    first, last = x <= 0, x >= 255
    up, lo = x + 0.5 - m, x - 0.5 - m
    edge = torch.log(-torch.expm1(-1 / b))  # log(1 - e^(-1/b)): a bin on one side of m
    left = math.log(0.5) + up / b + torch.where(first, torch.zeros_like(edge), edge)
    right = math.log(0.5) - lo / b + torch.where(last, torch.zeros_like(edge), edge)
    mass = 1 - 0.5 * torch.exp(-up.clamp(min=0) / b) * (~last) - 0.5 * torch.exp(lo.clamp(max=0) / b) * (~first)
    mid = torch.log(mass.clamp(min=1e-12))
    return torch.where(up <= 0, left, torch.where(lo >= 0, right, mid))
