"""The pixel model of `vqlossless`: an image given the code vectors of a trained `vq` codec.

    x --vq: g_a, RVQ (first n stages)--> z_hat (the sum of n code vectors, 1/16 of the size)
    p(x | z_hat) = prod over 16 phases:  p(R) p(G | R) p(B | R, G)  at every pixel of the phase

The image is interlaced in 4 x 4 blocks; a phase is one position of the block in every block,
coarse to fine as in Adam7 (`PHASES`): the first phase sees only the condition, the next ones
sparse known pixels two apart, the last half all four neighbours. Each phase is one batch over
the image, so a picture takes 48 passes of a small network at 1/16 of its pixels, about the
work of one pass over all of them (L3C and RC code the residual of a lossy layer in a few
passes; a raster-scan model needs one per pixel). A phase's pixel sees:

- the condition: z_hat upsampled to full resolution by convolutions and pixel shuffles (what
  the vq decoder's synthesis does, here in exact arithmetic and learned for this purpose);
- the known pixels within `RADIUS` of it, and which they are (a strided 5 x 5 convolution),
  and how much they vary (`spread`);
- for G and B, the channels of the same pixel coded before;
- how wrong the model was at those known pixels (`normalized_error`: |x - mean| / scale per
  colour), the feedback CALIC and LOCO-I take from their own prediction errors: a model that
  misjudged the neighbourhood is likely to misjudge the pixel.

Every sub-pixel has a discretized Laplace (mean and scale), which constriction codes without a
table of 256 entries per sub-pixel. All layers are `neurocodec.exact` layers, so the decoder
rebuilds the same distributions bit for bit; the vq parts (g_a, codebooks, index prior) are
those of the vq codec it was built from, frozen, and not copied: a vqlossless codec pins
that codec's weights file by its SHA-256 and loads it (or its retired copy) from there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import exact
from ...entropy.calibration import normalized_error
from ...entropy.losses import laplace_bits
from ..vq.codec import TRAINING_ONLY
from ..vq.net import VQVAE

BLOCK = 4  # the image is interlaced in blocks of 4 x 4 pixels ...
# ... coded one position of the block at a time, coarse to fine as in PNG's Adam7: each
# phase is every pixel at that position, so the first phases see sparse neighbours and the
# last half see all four of theirs
PHASES = ((0, 0), (2, 2), (0, 2), (2, 0), (1, 1), (3, 3), (1, 3), (3, 1),
          (0, 1), (2, 3), (0, 3), (2, 1), (1, 0), (3, 2), (1, 2), (3, 0))
RADIUS = 2  # a phase sees the known pixels within 2 of each of its pixels (a 5 x 5 window)
LOG_SCALE_RANGE = (-7.0, 3.0)  # of the scale on the (x - 128) / 128 axis: 0.12 to 2,600 levels
LEVEL = exact.ONE / 128  # one pixel level in exact-mode units
# layers added later, zero at first: a checkpoint without them resumes as it was
ZERO_INIT = ("phases.activity.weight", "phases.errors.weight")


def spread(window: torch.Tensor) -> torch.Tensor:
    """(B, 3, H/4, W/4): max - min of each colour over the known pixels of each window of
    `window` (B, 4, ...: values and known mask), 0 where none is known. Exact on integers."""
    values, known = window[:, :3], window[:, 3:] > 0
    far = 2.0**30  # beyond any value, in either mode
    k = 2 * RADIUS + 1
    hi = F.max_pool2d(torch.where(known, values, -far), k, stride=BLOCK)
    lo = -F.max_pool2d(torch.where(known, -values, -far), k, stride=BLOCK)
    return (hi - lo).clamp_(min=0)


def known_mask(phase: int, h: int, w: int, dtype=torch.float32) -> torch.Tensor:
    """(1, 1, h, w): 1 at the pixels of the phases before `phase`."""
    block = torch.zeros(BLOCK, BLOCK, dtype=dtype)
    for a, b in PHASES[:phase]:
        block[a, b] = 1
    return block.repeat(-(-h // BLOCK), -(-w // BLOCK))[None, None, :h, :w]


class Condition(nn.Module):
    """z_hat (B, D, h, w) and the stage count -> `out` features per pixel (B, out, 16h, 16w)."""

    def __init__(self, dim: int, width: int, out: int):
        super().__init__()
        self.net = nn.Sequential(
            exact.Conv2d(dim + 1, width, 3, padding=1), exact.LeakyReLU(),
            exact.Conv2d(width, 32 * 16, 1), nn.PixelShuffle(4),
            exact.Conv2d(32, 64, 3, padding=1), exact.LeakyReLU(),
            exact.Conv2d(64, out * 16, 1), nn.PixelShuffle(4),
        )

    def forward(self, z_hat: torch.Tensor, fraction: float) -> torch.Tensor:
        """`fraction`: the stages used over the stages there are (a multiple of 1/S)."""
        level = torch.full_like(z_hat[:, :1], round(fraction * exact.ONE) / (1 if exact.is_exact() else exact.ONE))
        return self.net(torch.cat([z_hat, level], 1))


class PhaseModel(nn.Module):
    """Laplace parameters of the sub-pixels of one phase, channel by channel."""

    def __init__(self, cond: int, width: int, head: int):
        super().__init__()
        k = 2 * RADIUS + 1
        self.context = exact.Conv2d(4, width, k, stride=BLOCK, bias=False)  # known pixels and their mask
        self.cond = exact.Conv2d(cond, width, 1, bias=False)  # the condition at the phase's pixels
        self.phase = exact.Conv2d(len(PHASES), width, 1)  # which phase (one-hot): a bias each
        self.trunk = exact.Conv2d(width, width, 1)
        self.hidden = nn.ModuleList(exact.Conv2d(width + c, head, 1) for c in range(3))
        self.out = nn.ModuleList(exact.Conv2d(head, 2, 1) for _ in range(3))
        self.skip = nn.ModuleList(exact.Conv2d(c, 2, 1, bias=False) for c in (1, 2))  # from R (and G) of the pixel
        # a linear predictor from the neighbours, there from the first step
        self.direct = exact.Conv2d(4, 6, k, stride=BLOCK, bias=False)
        nn.init.zeros_(self.direct.weight)
        # how much the known neighbours vary, per colour (max - min): the error-energy context
        # of CALIC and LOCO-I, which says how wide a pixel's distribution is, given outright
        # rather than learned from scratch. Zero at first, so a model trained before it was
        # added resumes unchanged (ZERO_INIT).
        self.activity = exact.Conv2d(3, width, 1, bias=False)
        nn.init.zeros_(self.activity.weight)
        # the normalised errors of the known pixels in the window, per colour (zero at first too)
        self.errors = exact.Conv2d(3, width, k, stride=BLOCK, bias=False)
        nn.init.zeros_(self.errors.weight)
        for out in self.out:
            nn.init.constant_(out.bias[1:], -3.0)

    def features(self, padded: torch.Tensor, cond: torch.Tensor, phase: int,
                 errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, the linear path's parameters) at the pixels of phase `phase`. `padded`
        (B, 4, H + 2R, W + 2R): the known pixels (zero elsewhere) and the known mask, H and W
        multiples of BLOCK, zero-padded by R = RADIUS; `cond` (B, C, H, W): the condition;
        `errors` (B, 3, H + 2R, W + 2R): the known pixels' normalised errors, padded alike."""
        a, b = PHASES[phase]
        window = padded[:, :, a:, b:]  # window (i, j) centred on (4i + a, 4j + b)
        context, direct = self._windows(window)
        onehot = torch.zeros(padded.shape[0], len(PHASES), 1, 1, dtype=padded.dtype, device=padded.device)
        onehot[:, phase] = exact.ONE if exact.is_exact() else 1.0  # the same at every pixel: computed once
        x = (context + self.cond(cond[:, :, a::BLOCK, b::BLOCK]) + self.phase(onehot) + self.activity(spread(window))
             + self.errors(errors[:, :, a:, b:]))
        x = exact.leaky_relu(x)
        return exact.leaky_relu(self.trunk(x)), direct

    def _windows(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context and direct layers over the same windows; in exact mode as one
        convolution, whose output channels are the same integers as the two layers' own."""
        if not exact.is_exact():
            return self.context(window), self.direct(window)
        (wc, _), (wd, _) = self.context.exact_weights(), self.direct.exact_weights()
        acc = F.conv2d(window, torch.cat([wc, wd]), stride=BLOCK)
        n = wc.shape[0]
        return self.context._round(acc[:, :n], None), self.direct._round(acc[:, n:], None)

    def head(self, k: int, features: tuple[torch.Tensor, torch.Tensor], previous: torch.Tensor | None) -> torch.Tensor:
        """(B, 2, H/4, W/4) mean and log-scale of channel k given channels 0..k-1 of the pixel."""
        h, direct = features
        inp = h if previous is None else torch.cat([h, previous], 1)
        out = self.out[k](exact.leaky_relu(self.hidden[k](inp))) + direct[:, 2 * k : 2 * k + 2]
        return out if previous is None else out + self.skip[k - 1](previous)


class VQLossless(nn.Module):
    def __init__(self, vq: dict, cond: int = 8, cond_width: int = 128, width: int = 48, head: int = 32,
                 vq_weights: dict | None = None):
        super().__init__()
        self.vq_arch = dict(vq)
        self.vq_weights = dict(vq_weights or {})  # {"codec": name, "weights_sha256": hex}: the vq weights built on
        self.cond_channels, self.cond_width, self.width, self.head_width = cond, cond_width, width, head
        self.vq = VQVAE(**vq)
        self.vq.g_s = nn.Identity()  # only the encoder's analysis, the codebooks and the index prior
        self.vq.requires_grad_(False)
        self.condition = Condition(self.vq.dim, cond_width, cond)
        self.phases = PhaseModel(cond, width, head)

    def load_vq(self, weights: dict[str, torch.Tensor]) -> None:
        """A vq codec's weights file into `self.vq`, in float32 (its synthesis is not needed)."""
        state = {k: v.float() for k, v in weights.items() if not k.startswith("g_s.")}
        missing, unexpected = self.vq.load_state_dict(state, strict=False)
        if unexpected or set(missing) - set(TRAINING_ONLY):
            raise ValueError(f"the pinned vq weights do not fit: missing {missing}, unexpected {unexpected}")

    def load_pixel_model(self, state: dict[str, torch.Tensor]) -> None:
        """The pixel model's weights (a codec folder's or a checkpoint's; vq parts are skipped:
        they come from `load_vq`). Layers added since (ZERO_INIT) may be missing: they stay zero."""
        missing, unexpected = self.load_state_dict({k: v for k, v in state.items() if not k.startswith("vq.")}, strict=False)
        if unexpected or any(not k.startswith("vq.") and k not in ZERO_INIT for k in missing):
            raise ValueError(f"weights do not fit the vqlossless pixel model: missing {missing}, unexpected {unexpected}")

    def arch(self) -> dict:
        return {"vq": self.vq_arch, "cond": self.cond_channels, "cond_width": self.cond_width,
                "width": self.width, "head": self.head_width, "vq_weights": self.vq_weights}

    @torch.no_grad()
    def latent(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Training: z_hat (float) of images x (B, 3, H, W) in [0, 1] from the first n stages."""
        self.vq.eval()
        z_hat, _, _ = self.vq.rvq(self.vq.g_a(x), n)
        return z_hat

    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """Training: bits per sub-pixel of x (B, 3, H, W) in [0, 1], H and W multiples of 16,
        given the first n stages (the index bits are the vq prior's, not counted here)."""
        levels = torch.round(x * 255)
        pixels = (levels - 128) / 128
        cond = self.condition(self.latent(x, n), n / self.vq.stages)
        errors = torch.zeros_like(pixels)  # the normalised errors of the phases coded so far
        bits = 0.0
        for p, (a, b) in enumerate(PHASES):
            known = known_mask(p, *x.shape[2:]).to(x)
            canvas = torch.cat([pixels * known, known.expand_as(x[:, :1])], 1)
            f = self.phases.features(F.pad(canvas, (RADIUS,) * 4), cond, p, F.pad(errors, (RADIUS,) * 4))
            here, target = pixels[:, :, a::BLOCK, b::BLOCK], levels[:, :, a::BLOCK, b::BLOCK]
            phase_errors = []
            for k in range(3):
                mean, log_scale = self.phases.head(k, f, here[:, :k] if k else None).split(1, 1)
                scale = torch.exp(log_scale.clamp(*LOG_SCALE_RANGE))
                bits = bits + laplace_bits(target[:, k : k + 1], 128 + mean * 128, scale * 128, 0, 255).mean()
                phase_errors.append(normalized_error(here[:, k : k + 1], mean.detach(), scale.detach()))
            errors = errors.clone()  # a new tensor: the one before is saved for the backward pass
            errors[:, :, a::BLOCK, b::BLOCK] = torch.cat(phase_errors, 1)
        return bits / (3 * len(PHASES))
