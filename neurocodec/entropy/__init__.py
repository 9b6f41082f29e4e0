"""neurocodec's one entropy-coding backend, over constriction.

Two coders: `RangeEncoder`/`RangeDecoder` (a queue: symbols come out in the order they went
in; for autoregressive and context models) and `AnsCoder` (a stack, for bits-back coding).
Four families of distributions, each a batch with one distribution per symbol, turned into
exactly invertible fixed-point models by constriction: `Categorical`, `DiscretizedGaussian`,
`DiscretizedLaplace`, `DiscretizedLogisticMixture`. A coder takes any of them:
`encoder.encode(symbols, dist)`.

Determinism: constriction builds its fixed-point model from the float parameters it is given
with IEEE-exact arithmetic, so identical parameters give identical models. Making the
parameters identical at encoder and decoder is the job of the model that computes them.
"""

from .coders import AnsCoder, RangeDecoder, RangeEncoder
from .distributions import Categorical, DiscretizedGaussian, DiscretizedLaplace, DiscretizedLogisticMixture, Distribution

__all__ = [
    "AnsCoder",
    "Categorical",
    "DiscretizedGaussian",
    "DiscretizedLaplace",
    "DiscretizedLogisticMixture",
    "Distribution",
    "RangeDecoder",
    "RangeEncoder",
]
