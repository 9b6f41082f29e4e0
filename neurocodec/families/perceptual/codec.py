"""`perceptual`: lossy image codec for low rates whose synthesis was trained with a perceptual
and an adversarial loss (net.py). It codes exactly as `context` does: the same latents, the
same exact entropy model, the same decoder cost; a file names its own codec and weights."""

from __future__ import annotations

from ... import registry
from ..context.codec import ContextCodec
from ..hyperprior.codec import HyperpriorConfig


@registry.family("perceptual", spec="neurocodec.families.perceptual.spec:PerceptualSpec", config=HyperpriorConfig)
class PerceptualCodec(ContextCodec):
    pass
