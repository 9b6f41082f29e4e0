"""Coding steps that compose, and the codec they make: see `steps`, `streams`, `likelihood`.

    from neurocodec import compose
    step = compose.BitsBack(prior=..., likelihood=lambda z: ..., posterior=lambda x: ...)
    codec = compose.LikelihoodCodec("my-vae", step=lambda shape: step, coder="ans", model=net)
"""

from .likelihood import LikelihoodCodec, check, state_digest
from .steps import Autoregressive, BitsBack, Each, Lockstep, Step, Symbols, Tiles, as_step, raster, wavefront
from .streams import Decoder, Encoder, Meter, Stack, StepError, Stream, fingerprint, seed_words

__all__ = [
    "Autoregressive", "BitsBack", "Decoder", "Each", "Encoder", "LikelihoodCodec", "Lockstep", "Meter", "Stack",
    "Step", "StepError", "Stream", "Symbols", "Tiles", "as_step", "check", "fingerprint", "raster", "seed_words",
    "state_digest", "wavefront",
]

from .latents import GaussianLatent, Pixels, fixed_to_image, image_to_fixed  # noqa: E402

__all__ += ["GaussianLatent", "Pixels", "fixed_to_image", "image_to_fixed"]
