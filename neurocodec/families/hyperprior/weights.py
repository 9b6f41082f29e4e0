"""The hyperprior's weights file: the float network state it holds, and the integer hyper
synthesis h_s that the codec runs in neurocodec's exact runtime.
"""

from __future__ import annotations

import torch

from ... import exact
from .net import VariableRateHyperprior

ACT_BITS, WEIGHT_BITS = exact.ACT_BITS, exact.WEIGHT_BITS  # h_s runs in neurocodec.exact
Z_HALF_RANGE = 63  # z symbols are coded in [-63, 63] around each channel's median


def quantize_hyper_synthesis(h_s: torch.nn.Sequential) -> dict[str, torch.Tensor]:
    """Integer weights (int32) and biases (int64) of the float h_s, as the weights file keeps them."""
    out = {}
    for i, layer in enumerate(h_s):
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            w = layer.weight.detach().double()
            b = layer.bias.detach().double()
            out[f"h_s.{i}.weight_q"] = torch.round(w * 2**WEIGHT_BITS).to(torch.int32)
            out[f"h_s.{i}.bias_q"] = torch.round(b * 2 ** (WEIGHT_BITS + ACT_BITS)).to(torch.int64)
    return out


def dequantize_hyper_synthesis(q: dict[str, torch.Tensor], dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The float h_s state that the integer one stands for (float64: exactly)."""
    out = {}
    for k, v in q.items():
        if k.endswith(".weight_q"):
            out[k[: -len("_q")]] = v.double().div(2**WEIGHT_BITS).to(dtype)
        elif k.endswith(".bias_q"):
            out[k[: -len("_q")]] = v.double().div(2 ** (WEIGHT_BITS + ACT_BITS)).to(dtype)
    return out


def exact_hyper_synthesis(q: dict[str, torch.Tensor], template: torch.nn.Sequential) -> torch.nn.Module:
    """compressai's mean-scale h_s (deconv, leaky, deconv, leaky, conv) as an exact network
    whose integer weights are the stored ones: float64 parameters that round back to them
    exactly, unclamped as it was trained, every accumulator checked (`exact.from_torch`)."""
    h_s = exact.from_torch(template, clamp=False).double()
    h_s.load_state_dict({k[len("h_s."):]: v for k, v in dequantize_hyper_synthesis(q, torch.float64).items()})
    return h_s.eval()


def float_state(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 network state held in a shipped weights file (h_s dequantized)."""
    state = {k: v.float() for k, v in weights.items() if not k.startswith("h_s.") and k not in ("z_pmf", "z_median_q")}
    state.update(dequantize_hyper_synthesis({k: v for k, v in weights.items() if k.startswith("h_s.")}))
    return state


@torch.no_grad()
def export_weights(net: VariableRateHyperprior) -> dict[str, torch.Tensor]:
    """Shipped weights from a trained network: float16 convolutions, float32 GDN and
    entropy-bottleneck parameters, the integer h_s and the z probability tables."""
    out = {}
    for k, v in net.state_dict().items():
        top = k.split(".")[0]
        if top in ("g_a", "g_s", "h_a"):
            half = v.dim() == 4  # conv kernels; GDN's reparametrized beta/gamma stay float32
            out[k] = v.half() if half else v.float()
        elif top in ("context", "ep"):  # a context model's exact layers (float32: they are small)
            out[k] = v.float()
        elif top == "entropy_bottleneck" and "._" not in k and not k.startswith("entropy_bottleneck._"):
            out[k] = v.float()
    out.update(quantize_hyper_synthesis(net.h_s))
    eb = net.entropy_bottleneck
    medians = eb._get_medians().detach().double().squeeze()  # (N,)
    median_q = torch.round(medians * 2**ACT_BITS)
    grid = torch.arange(-Z_HALF_RANGE, Z_HALF_RANGE + 1, dtype=torch.double)
    values = (median_q[:, None] / 2**ACT_BITS + grid[None, :]).float()[:, None, :]
    pmf, _, _ = eb._likelihood(values)
    out["z_pmf"] = pmf[:, 0, :].float().clamp_min(0).contiguous()
    out["z_median_q"] = median_q.to(torch.int64)
    out["log_gain"] = net.log_gain.detach().float()
    out["log_inv_gain"] = net.log_inv_gain.detach().float()
    return {k: v.contiguous() for k, v in out.items()}
