"""Training of the checkerboard context model; resumes from a `context` or a `hyperprior` codec
(the context layers then start at zero: the model starts as the hyperprior it came from)."""

from __future__ import annotations

from ..hyperprior.spec import HyperpriorSpec
from .net import CheckerboardHyperprior


class ContextSpec(HyperpriorSpec):
    family = "context"

    network = CheckerboardHyperprior

    def load(self, model, state):
        missing = {k: v for k, v in model.state_dict().items() if k.split(".")[0] in ("context", "ep") and k not in state}
        super().load(model, {**state, **missing})

    def export(self, model, info, name):
        config, weights = super().export(model, info, name)
        return dict(config, family="context"), weights
