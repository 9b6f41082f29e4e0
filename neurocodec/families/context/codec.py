"""`context`: lossy image codec, the hyperprior with a two-pass checkerboard context.

Per tile: z as in `hyperprior`; then the anchor half of y under the hyperprior's Gaussians;
then the other half under Gaussians refined from the decoded anchors by an exact network
(`net.CheckerboardHyperprior.refine`). Both halves are coded as whole batches, so decoding is
as parallel as the hyperprior's, with one more small network pass.
"""

from __future__ import annotations

import torch

from ... import exact, registry
from ..hyperprior.codec import HyperpriorCodec, HyperpriorConfig
from .net import CheckerboardHyperprior, anchors


@registry.family("context", spec="neurocodec.families.context.spec:ContextSpec", config=HyperpriorConfig)
class ContextCodec(HyperpriorCodec):
    network = CheckerboardHyperprior

    def to(self, device) -> "ContextCodec":
        """As the hyperprior's; the context layers, which feed the coder in exact mode, stay on
        the CPU with h_s (exact float64 on a GPU would depend on its convolution algorithms)."""
        super().to(device)
        self.net.context.cpu()
        self.net.ep.cpu()
        return self

    def _latents(self, io, gain, inv_gain, h: int, w: int, known=None) -> tuple[torch.Tensor, ...]:
        z_sym = self._code_z(io, h, w, known)
        self._gain = gain
        hyper = self.hyper(z_sym)
        mu, sigma = self.latent_params(hyper, gain)
        first = anchors(mu).bool().expand_as(mu)
        y_sym = torch.zeros_like(mu)
        with io.at("anchors"):
            y_sym[first] = self._code_y(io, mu, sigma, known, first)
        y_hat = (y_sym + mu) * inv_gain * first
        with torch.no_grad(), exact.exact_mode():
            hyper = hyper + self.net.refine(hyper, exact.to_fixed(y_hat))
        mu2, sigma2 = self.latent_params(hyper, gain)
        with io.at("others"):
            y_sym[~first] = self._code_y(io, mu2, sigma2, known, ~first)
        return z_sym, y_sym, torch.where(first, mu, mu2)
