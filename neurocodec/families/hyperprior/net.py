"""The variable-rate mean-scale hyperprior network (Minnen et al. 2018 + gain units).

One network serves every quality: a learned gain vector per rate level scales the latent
before rounding (Cui et al. 2021, "Asymmetric gained deep image compression"), and an inverse
gain undoes it before synthesis. Qualities between two trained levels interpolate the gains
geometrically. The transforms are compressai's layout in plain torch (`layers.py`), the
entropy models of training are compressai's; the coding itself is done by
`neurocodec.families.hyperprior.codec` through neurocodec's entropy backend.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .layers import transforms

# Rate-distortion trade-offs of the trained levels (MSE on 0..255, as compressai's zoo), each
# about twice the last from 0.0005; a network trains the first `levels` of them: nine (to 0.12)
# unless told, which spans roughly 0.1 to 1.3 bits per pixel on Kodak; a tenth and an eleventh
# (0.24, 0.47) reach higher rates.
LAMBDAS = tuple(round(0.0005 * 240 ** (i / 8), 6) for i in range(11))
LEVELS = 9  # levels of a new network


def entropy_models(N: int) -> tuple[nn.Module, nn.Module]:
    """compressai's EntropyBottleneck (for z) and GaussianConditional (for y): what training
    and the encoder-side search need for likelihoods. Imported here only: compressai's import
    costs seconds that coding a file does not need."""
    with warnings.catch_warnings():  # compressai's import trips torch's torch.jit deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    return EntropyBottleneck(N), GaussianConditional(None)


class VariableRateHyperprior(nn.Module):
    """compressai's MeanScaleHyperprior with gains. `likelihoods=False` leaves out the entropy
    models: the codec codes with its own tables and needs only the transforms. `width`: the
    channels inside g_a and g_s (N unless given; a trained network can be widened there)."""

    def __init__(self, N: int = 128, M: int = 192, levels: int = LEVELS, likelihoods: bool = True, width: int | None = None):
        super().__init__()
        # registration order as in compressai, so optimizer states saved by index still fit
        eb, gc = entropy_models(N) if likelihoods else (None, None)
        if likelihoods:
            self.entropy_bottleneck = eb
        self.N, self.M, self.levels, self.width = N, M, levels, width or N
        self.g_a, self.g_s, self.h_a, self.h_s = transforms(N, M, self.width)
        if likelihoods:
            self.gaussian_conditional = gc
        if not 2 <= levels <= len(LAMBDAS):
            raise ValueError(f"levels {levels!r} is not in 2..{len(LAMBDAS)}")
        # log-gains, one vector per level; initialised to a ladder of increasing rate
        init = torch.linspace(-1.0, 1.0, levels)[:, None].repeat(1, M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())

    def add_likelihoods(self, state: dict[str, torch.Tensor]) -> None:
        """Give a network built with `likelihoods=False` its entropy models, from `state`."""
        if not hasattr(self, "entropy_bottleneck"):
            self.entropy_bottleneck, self.gaussian_conditional = entropy_models(self.N)
            self.load_learned({k: v for k, v in state.items() if k.startswith("entropy_bottleneck.")}, partial=True)
            self.to(self.log_gain.device)

    def load_learned(self, state: dict[str, torch.Tensor], partial: bool = False) -> None:
        """Load learned tensors only; compressai's derived CDF buffers are not stored. Without
        entropy models, their tensors in `state` are skipped."""
        if not hasattr(self, "entropy_bottleneck"):
            state = {k: v for k, v in state.items() if not k.startswith("entropy_bottleneck.")}
        missing, unexpected = nn.Module.load_state_dict(self, state, strict=False)
        missing = [k for k in missing if not k.startswith("gaussian_conditional.") and "._" not in k]
        if (missing and not partial) or unexpected:
            raise KeyError(f"weights do not fit the network: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain, shape (B, M, 1, 1), for continuous levels up to L-1; below
        level 0 (rates under the lowest trained lambda) the log-gains of levels 0 and 1 are
        extrapolated."""
        level = level.clamp(max=self.levels - 1)
        lo = level.floor().long().clamp(0, self.levels - 2)
        a = (level - lo.to(level.dtype))[:, None]
        g = (1 - a) * self.log_gain[lo] + a * self.log_gain[lo + 1]
        ig = (1 - a) * self.log_inv_gain[lo] + a * self.log_inv_gain[lo + 1]
        return g.exp()[:, :, None, None], ig.exp()[:, :, None, None]

    def quantized(self, hyper: torch.Tensor, y_g: torch.Tensor, gain: torch.Tensor, inv_gain: torch.Tensor,
                  quantize) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y_hat_g, scales_g, means_g): the gained latent y_g quantized around its means by
        `quantize` (a rounding of the centred values: straight-through in training, annealed
        in the encoder's search), and the Gaussian parameters it is coded with."""
        scales, means = hyper.chunk(2, 1)
        means_g = means * gain
        return quantize(y_g - means_g) + means_g, scales * gain, means_g

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict:
        """Training pass: noisy likelihoods, straight-through rounding into the synthesis."""
        gain, inv_gain = self.gains(level)
        y = self.g_a(x)
        z = self.h_a(y)
        with torch.autocast(z.device.type, enabled=False):  # the factorized density in float32
            z_hat, z_likelihoods = self.entropy_bottleneck(z.float())
        y_g = y * gain
        y_hat_g, scales_g, means_g = self.quantized(self.h_s(z_hat), y_g, gain, inv_gain, straight_through)
        _, y_likelihoods = self.gaussian_conditional(y_g, scales_g, means=means_g)
        y_hat = y_hat_g * inv_gain  # also what a conditional discriminator sees (families/perceptual)
        return {"x_hat": self.g_s(y_hat), "y_hat": y_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


def grow_gains(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """`state` with its log-gains (and inverse log-gains) extended to `levels` rate levels, each
    new level's extrapolated linearly from the two highest: how a trained network is given rate
    levels above its top before training them. A state with `levels` already is returned as is."""
    out = dict(state)
    for key in ("log_gain", "log_inv_gain"):
        if key in out:
            while len(out[key]) < levels:
                out[key] = torch.cat([out[key], 2 * out[key][-1:] - out[key][-2:-1]])
    return out


def bracket(level: float, levels: int) -> tuple[int, float]:
    """(lo, a) with level = lo + a, lo and lo + 1 trained levels (of `levels`): a in [0, 1]
    between them; below level 0 a is negative, the two lowest levels extrapolated."""
    lo = min(max(int(math.floor(level)), 0), levels - 2)
    return lo, level - lo


def straight_through(v: torch.Tensor) -> torch.Tensor:
    """round(v) forward, identity backward."""
    return v + (torch.round(v) - v).detach()


def annealed_round(v: torch.Tensor, tau: float) -> torch.Tensor:
    """Stochastic Gumbel annealing (Yang, Bamler & Mandt 2020): v rounded down or up at
    random, the nearer integer the likelier (logits -atanh(distance) / tau), relaxed by a
    Gumbel-softmax of temperature tau. As tau falls it becomes the hard rounding, with
    gradients all the way, where straight-through rounding has none to the choice."""
    lo = torch.floor(v).detach()
    up = (v - lo).clamp(1e-5, 1 - 1e-5)  # the distance to the integer below
    logits = torch.stack([-torch.atanh(up), -torch.atanh(1 - up)], -1) / tau
    return lo + F.gumbel_softmax(logits, tau=tau)[..., 1]
