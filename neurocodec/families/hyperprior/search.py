"""Encoder-side search for the hyperprior and context codecs (`-e/--effort`): the latents of a
tile optimized for that tile, by the model's own rate-distortion loss. Only what the encoder
codes changes; the decoder is the same.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ...autocast import bf16
from .net import LAMBDAS, annealed_round, bracket
from .weights import ACT_BITS

# Adam's step on the latents (their scale is about 1 before the gain): 4x Yang et al.'s, for
# runs 5-80x shorter than their 2,000 steps (0.02 measured better than 0.005 and 0.01 at 25,
# 100 and 400 steps on a Kodak crop)
SEARCH_LR = 0.02
SEARCH_TAU = (0.5, 0.05)  # the search's rounding temperature, first and last step
SEARCH_CHECK = 10  # steps between two measures of the hard-rounded latents


def search(codec, t: torch.Tensor, y: torch.Tensor, z: torch.Tensor, quality: int, steps: int,
           size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder-side search by stochastic Gumbel annealing (Yang, Bamler & Mandt 2020):
    `steps` Adam steps on the tile's latents y and z themselves, minimizing the
    rate-distortion loss the network was trained for at this quality (lambda interpolated
    as the gains are), each latent rounded at random by `annealed_round` with a
    temperature falling from 0.5 to 0.05, so the search ends at the codec's hard rounding.
    The rate is the model's own, context model included (`net.quantized`). Every
    `SEARCH_CHECK` steps the loss of the hard-rounded latents is taken and the best kept:
    never worse than no search, by the model's measure. Only what the encoder codes changes."""
    net, (h, w) = codec.net, size
    net.add_likelihoods(codec._entropy_state)
    level = codec.level(quality)
    lo, a = bracket(level, net.levels)
    log_lam = np.log(LAMBDAS[: net.levels])
    lam = float(np.exp(log_lam[lo] + a * (log_lam[lo + 1] - log_lam[lo])))
    gain, inv_gain = (g.float().to(t.device) for g in codec.gains(quality))
    medians = (codec.z_median_q[None, :, None, None] / 2**ACT_BITS).float().to(t.device)
    y, z = y.detach().clone().requires_grad_(True), z.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y, z], lr=SEARCH_LR)

    def loss(quantize) -> torch.Tensor:
        z_hat = quantize(z - medians) + medians
        y_hat_g, scales_g, means_g = net.quantized(net.h_s(z_hat), y * gain, gain, inv_gain, quantize)
        y_lik = net.gaussian_conditional._likelihood(y_hat_g, scales_g, means=means_g)
        z_lik = net.entropy_bottleneck._likelihood(z_hat.permute(1, 0, 2, 3).reshape(z.shape[1], 1, -1))[0]
        bits = -(torch.log2(y_lik.clamp_min(1e-9)).sum() + torch.log2(z_lik.clamp_min(1e-9)).sum())
        x_hat = net.g_s(y_hat_g * inv_gain)[..., :h, :w]
        return lam * 255**2 * ((x_hat - t[..., :h, :w]) ** 2).mean() + bits / (h * w)

    best = (math.inf, None, None)
    # in bf16 where the hardware has it: effort 1 on 4 Kodak crops gained -4.00 % BD-rate in
    # 0.63x the seconds of float32 (-4.01 %); the latents it picks are then coded exactly
    with torch.random.fork_rng(devices=[t.device] if t.device.type == "cuda" else []), \
            bf16(t.device) or contextlib.nullcontext():
        torch.manual_seed(0)  # the same image and settings give the same file
        for i in range(steps + 1):
            if i % SEARCH_CHECK == 0 or i == steps:
                hard = loss(torch.round).item()
                if hard < best[0]:
                    best = (hard, y.detach().clone(), z.detach().clone())
            if i == steps:
                break
            tau = SEARCH_TAU[0] * (SEARCH_TAU[1] / SEARCH_TAU[0]) ** (i / steps)
            with torch.enable_grad():
                opt.zero_grad()
                loss(lambda v: annealed_round(v, tau)).backward()
            opt.step()
    return best[1], best[2]
