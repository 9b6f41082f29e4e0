"""bf16 autocast where the hardware computes in bf16: float work whose result only has to be
good, not reproducible bit for bit (training; the encoder's search, whose chosen latents are
then coded exactly). Never for what a decoder must rebuild."""

from __future__ import annotations

import torch


def bf16(device: str | torch.device):
    """A bf16 autocast context for `device` (CUDA, or a CPU whose oneDNN computes in bf16:
    AVX-512 and later), or None where bf16 would only be emulated."""
    kind = torch.device(device).type
    if kind == "cuda" or (kind == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return torch.autocast(kind, dtype=torch.bfloat16)
    return None
