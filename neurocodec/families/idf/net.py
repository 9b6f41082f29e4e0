"""Integer Discrete Flow (Hoogeboom et al. 2019) for RGB images, with a conditional prior.

Each level squeezes (space-to-depth 2x2) and splits the channels by position in the 2x2 block:
A = the diagonal pixels (0,0),(1,1), B = the anti-diagonal ones (0,1),(1,0). The couplings
alternate `B += round(t(A))` and `A += round(t(B))`, a learned integer lifting wavelet
(predict, update, ..., update), which is exactly invertible on the integers whatever t is.
The last coupling is an update: a final predict step would only duplicate the mean of the
prior p(B | A) that follows. B (the
"details") is then factored out and coded under p(B | A); A goes on to the next level. The
last level's A is coded too. Every coded part is split by colour of origin (channels stay
colour-major through squeezes): its G third first, then R and B conditioned on G as well.

Priors are discretized logistics (training) or Laplaces (coding, see `neurocodec.families.idf.codec`)
with a mean and log-scale per latent from a small network. The same code runs in float mode
(training: rounding with a straight-through gradient) and in `exact.exact_mode()` (coding:
latents are float64 integers, networks integer, scales from `exact.fixed_exp`), where the
encoder and decoder compute bit-identical translations and prior parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import exact

IN_SCALE = 128.0  # latents enter networks as z / 128 (7 fractional bits: on the exact grid)
LOG_SCALE_RANGE = (-3.0, 9.0)  # log-scales are clamped here, in training and coding alike
INIT_LOG_SCALE = 3.0


def small_net(cin: int, hidden: int, cout: int) -> nn.Sequential:
    """Three 3x3 convolutions; the last starts at zero, so a new flow is the identity."""
    last = exact.Conv2d(hidden, cout, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        exact.Conv2d(cin, hidden, 3, padding=1),
        exact.LeakyReLU(),
        exact.Conv2d(hidden, hidden, 3, padding=1),
        exact.LeakyReLU(),
        last,
    )


def _init_log_scale(net: nn.Sequential) -> None:
    """Start a prior wide (scale e**3 = 20 levels), so the first steps have sane gradients."""
    bias = net[-1].bias
    with torch.no_grad():
        bias[bias.numel() // 2 :] = INIT_LOG_SCALE


def run(net: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """`net` on integer latents `z`, output in latent units (x IN_SCALE)."""
    v = z / IN_SCALE
    if exact.is_exact():
        return exact.from_fixed(net(exact.to_fixed(v).clamp_(-exact.ACT_LIMIT, exact.ACT_LIMIT))) * IN_SCALE
    return net(v.clamp(-1024, 1024)) * IN_SCALE


def round_int(t: torch.Tensor) -> torch.Tensor:
    """floor(t + 0.5); in float mode with a straight-through gradient."""
    r = torch.floor(t + 0.5)
    return r if exact.is_exact() or not t.requires_grad else t + (r - t).detach()


def block_perm(n_in: int) -> torch.Tensor:
    """Channel order after pixel_unshuffle(2) of `n_in` channels: A (diagonal) then B."""
    a = [j * 4 + k for j in range(n_in) for k in (0, 3)]
    b = [j * 4 + k for j in range(n_in) for k in (1, 2)]
    return torch.tensor(a + b)


def split_g(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G third, R and B thirds) of a colour-major channel stack."""
    r, g, b = t.chunk(3, 1)
    return g, torch.cat([r, b], 1)


def merge_g(g: torch.Tensor, rb: torch.Tensor) -> torch.Tensor:
    r, b = rb.chunk(2, 1)
    return torch.cat([r, g, b], 1)


class Level(nn.Module):
    def __init__(self, n_in: int, hidden: int, couplings: int, top: bool):
        super().__init__()
        c = 4 * n_in
        half, g = c // 2, c // 6
        self.register_buffer("perm", block_perm(n_in), persistent=False)
        self.register_buffer("inv_perm", torch.argsort(block_perm(n_in)), persistent=False)
        self.couplings = nn.ModuleList(small_net(half, hidden, half) for _ in range(couplings))
        self.prior_g = small_net(half, hidden, 2 * g)  # p(B_G | A)
        self.prior_rb = small_net(half + g, hidden, 4 * g)  # p(B_RB | A, B_G)
        for net in (self.prior_g, self.prior_rb):
            _init_log_scale(net)
        if top:  # the last A: p(A_G) per channel, p(A_RB | A_G)
            self.top_g = nn.Parameter(torch.tensor([[0.0] * g, [INIT_LOG_SCALE] * g]))
            self.top_rb = small_net(g, hidden, 4 * g)
            _init_log_scale(self.top_rb)

    def squeeze(self, z: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(z, 2)[:, self.perm]

    def unsqueeze(self, z: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(z[:, self.inv_perm], 2)

    def flow(self, z: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        a, b = z.chunk(2, 1)
        steps = list(enumerate(self.couplings))
        n = len(steps)
        for i, net in reversed(steps) if inverse else steps:
            sign = -1 if inverse else 1
            if (n - 1 - i) % 2:  # predict; the last coupling is always an update
                b = b + sign * round_int(run(net, a))
            else:
                a = a + sign * round_int(run(net, b))
        return torch.cat([a, b], 1)

    def top_params(self, like: torch.Tensor) -> torch.Tensor:
        p = self.top_g
        if exact.is_exact():
            p = exact.from_fixed(exact.to_fixed(p.detach()))
        p = (p.reshape(-1) * IN_SCALE).to(like.dtype)  # (mean, log-scale) as a network's output
        return p[None, :, None, None].expand(like.shape[0], -1, like.shape[2], like.shape[3])


def prior_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, log-scale) from a prior network's output in latent units."""
    mu, ls = out.chunk(2, 1)
    return mu, (ls / IN_SCALE).clamp(*LOG_SCALE_RANGE)


class IDF(nn.Module):
    """The flow and its priors. `groups` maps an image to the coded parts in decoding order;
    `decode` rebuilds the image from a callback that decodes one part given its prior."""

    def __init__(self, levels: int = 4, couplings: tuple[int, ...] = (1, 2, 2, 2), hidden: tuple[int, ...] = (24, 40, 64, 64)):
        super().__init__()
        if len(hidden) != levels or len(couplings) != levels:
            raise ValueError("one hidden width and one coupling count per level")
        self.n_levels, self.couplings, self.hidden = levels, tuple(couplings), tuple(hidden)
        self.levels = nn.ModuleList(
            Level(3 * 2**i, hidden[i], couplings[i], top=i == levels - 1) for i in range(levels)
        )

    @property
    def multiple(self) -> int:
        return 2**self.n_levels

    @property
    def parts(self) -> int:
        """How many coded parts `groups` gives: B_G and B_RB per level, then the last A's two."""
        return 2 * self.n_levels + 2

    @property
    def part_channels(self) -> int:
        """The most channels of a coded part: the last level's B_RB (two thirds of its B)."""
        return 2 * self.levels[-1].prior_rb[-1].out_channels // 4

    def groups(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(symbols, mean, log-scale) of every coded part of pixels `x` (N,3,H,W in 0..255,
        H and W multiples of `multiple`), in the order the decoder needs them."""
        z = x - 128.0
        per_level = []
        for lvl in self.levels:
            z = lvl.flow(lvl.squeeze(z))
            a, b = z.chunk(2, 1)
            b_g, b_rb = split_g(b)
            part = [(b_g, *prior_params(run(lvl.prior_g, a)))]
            part.append((b_rb, *prior_params(run(lvl.prior_rb, torch.cat([a, b_g], 1)))))
            per_level.append(part)
            z = a
        top = self.levels[-1]
        a_g, a_rb = split_g(z)
        out = [(a_g, *prior_params(top.top_params(a_g)))]
        out.append((a_rb, *prior_params(run(top.top_rb, a_g))))
        for part in reversed(per_level):
            out += part
        return out

    def decode(self, shape: tuple[int, int, int, int], decode_part, dtype=torch.float64) -> torch.Tensor:
        """Pixels (N,3,H,W) from `decode_part(mean, log_scale) -> symbols` called per part in
        the order of `groups`."""
        n, _, h, w = shape
        top = self.levels[-1]
        f = self.multiple
        g = top.top_g.shape[1]
        like = torch.zeros(n, g, h // f, w // f, dtype=dtype)
        a_g = decode_part(*prior_params(top.top_params(like)))
        a_rb = decode_part(*prior_params(run(top.top_rb, a_g)))
        a = merge_g(a_g, a_rb)
        for lvl in reversed(self.levels):
            b_g = decode_part(*prior_params(run(lvl.prior_g, a)))
            b_rb = decode_part(*prior_params(run(lvl.prior_rb, torch.cat([a, b_g], 1))))
            z = lvl.flow(torch.cat([a, merge_g(b_g, b_rb)], 1), inverse=True)
            a = lvl.unsqueeze(z)
        return a + 128.0

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """All latents of `x` (for tests of invertibility): the flow without priors."""
        z, outs = x - 128.0, []
        for lvl in self.levels:
            z = lvl.flow(lvl.squeeze(z))
            a, b = z.chunk(2, 1)
            outs.append(b.flatten(1))
            z = a
        return torch.cat(outs + [z.flatten(1)], 1)


# --- discretized densities for training (bits per latent) -----------------------------


def logistic_bits(z: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(z) under a logistic(mu, exp(log_scale)) integrated over [z-1/2, z+1/2]."""
    inv = torch.exp(-log_scale)
    d = z - mu
    up, lo = (d + 0.5) * inv, (d - 0.5) * inv
    # log(sigmoid(up) - sigmoid(lo)) = log(sigmoid(up)) + log(sigmoid(-lo)) + log(1 - exp(lo - up))
    log_p = F.logsigmoid(up) + F.logsigmoid(-lo) + torch.log(-torch.expm1(lo - up))
    return -log_p / math.log(2)


def laplace_bits(z: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(z) under a Laplace(mu, exp(log_scale)) integrated over [z-1/2, z+1/2]."""
    inv = torch.exp(-log_scale)
    d = (z - mu).abs()
    # the bin lies on one side of the mean: 1/2 e^{-(d-1/2)/b} (1 - e^{-1/b})
    side = math.log(0.5) - (d - 0.5) * inv + torch.log(-torch.expm1(-inv))
    # the bin straddles the mean: 1 - 1/2 e^{-(1/2-d)/b} - 1/2 e^{-(1/2+d)/b}
    dc = d.clamp(max=0.5)
    mid = torch.log1p(-0.5 * (torch.exp(-(0.5 - dc) * inv) + torch.exp(-(0.5 + dc) * inv)))
    return -torch.where(d >= 0.5, side, mid) / math.log(2)


def gaussian_bits(z: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    s = torch.exp(log_scale) * math.sqrt(2)
    d = (z - mu).abs()
    p = 0.5 * (torch.erfc((d - 0.5) / s) - torch.erfc((d + 0.5) / s))
    return -torch.log2(p.clamp_min(1e-12))


BITS = {"logistic": logistic_bits, "laplace": laplace_bits, "gaussian": gaussian_bits}


def code_length(net: IDF, x: torch.Tensor, prior: str = "logistic", log_factor: float = 0.0) -> torch.Tensor:
    """Mean code length of the batch `x` (pixels 0..255) in bits per sub-pixel."""
    bits = BITS[prior]
    return sum(bits(z, mu, ls + log_factor).sum() for z, mu, ls in net.groups(x)) / x.numel()


IDF.forward = code_length  # the training loss, through the module's call (DistributedDataParallel needs that)
