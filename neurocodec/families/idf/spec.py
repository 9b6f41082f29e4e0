"""Training of the `idf` integer discrete flow, and its export to a codec folder.

The loss is the flow's code length in bits per sub-pixel. Most of the run trains the paper's
discretized logistic prior; the last `coded_frac` of the budget fine-tunes under the
distribution that is actually coded (a discretized Laplace, which constriction codes natively
and fast), after fitting once a scale factor from the logistic's scales to the Laplace's.
Before the switch, the bits of the same latents under logistic, Laplace and Gaussian priors are
recorded in `info["prior_cost"]`: that is the measured cost of coding a Laplace.

Runs for a wall-clock budget and writes a resumable float32 checkpoint every few minutes;
`resume_state` resumes from a checkpoint folder, a codec folder or an installed codec name.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .net import BITS, IDF
from ...train.checkpoint import add_run, has_checkpoint, load_checkpoint, load_codec_folder, progress, save_checkpoint
from ...train.crops import RandomCrops, load_images

ARCH_KEYS = ("levels", "couplings", "hidden")
DEFAULT_ARCH = {"levels": 4, "couplings": [1, 2, 2, 2], "hidden": [24, 40, 64, 64]}


def build(arch: dict) -> IDF:
    return IDF(levels=arch["levels"], couplings=tuple(arch["couplings"]), hidden=tuple(arch["hidden"]))


def bits_per_subpixel(net: IDF, x: torch.Tensor, prior: str, log_factor: float = 0.0) -> torch.Tensor:
    """Mean code length of the batch `x` (pixels 0..255) in bits per sub-pixel."""
    bits = BITS[prior]
    return sum(bits(z, mu, ls + log_factor).sum() for z, mu, ls in net.groups(x)) / x.numel()


@torch.no_grad()
def compare_priors(net: IDF, x: torch.Tensor) -> dict:
    """bpsp of the same latents under each prior, the Laplace and Gaussian with their best
    global scale factor 2**(k/8); returns the factors too."""
    groups = net.groups(x)
    out = {"logistic": float(sum(BITS["logistic"](*g).sum() for g in groups) / x.numel())}
    for prior in ("laplace", "gaussian"):
        best = None
        for k in range(-8, 17):
            f = 2.0 ** (k / 8)
            b = float(sum(BITS[prior](z, mu, ls + math.log(f)).sum() for z, mu, ls in groups) / x.numel())
            if best is None or b < best[0]:
                best = (b, f)
        out[prior], out[prior + "_factor"] = best
    return out


def train(
    data: str | Path,
    out: str | Path,
    minutes: float,
    init_state: dict[str, torch.Tensor] | None = None,
    init_info: dict | None = None,
    arch: dict | None = None,
    batch: int = 8,
    crop: int = 96,
    lr: float = 2e-3,
    coded_frac: float = 0.15,
    device: str = "cpu",
    seed: int = 0,
    log=print,
) -> dict:
    """Train for `minutes` of wall clock; returns the training record and leaves a
    checkpoint in `out`. `arch` defaults to the resumed record's, else DEFAULT_ARCH."""
    torch.manual_seed(seed + (init_info or {}).get("steps", 0))
    out = Path(out)
    info = dict(init_info or {})
    arch = dict(arch or {k: info[k] for k in ARCH_KEYS if k in info} or DEFAULT_ARCH)
    net = build(arch).to(device)
    if init_state is not None:
        net.load_state_dict(init_state)
    info.setdefault("steps", 0)
    info.setdefault("train_minutes", 0.0)
    info.update(arch, batch=batch, crop=crop, data=str(data), device=device)
    add_run(info, device, minutes, lr)
    crops = RandomCrops(load_images(data), crop, device=device, seed=seed + info["steps"])
    val = torch.round(RandomCrops(load_images(data), crop, device=device, seed=12345).batch(16) * 255)

    opt = torch.optim.Adam(net.parameters(), lr=lr)
    start, budget = time.time(), minutes * 60
    last_save, step, total, n = start, 0, 0.0, 0
    prior, log_factor = "logistic", 0.0
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        for g in opt.param_groups:  # constant, then linearly down to a tenth over the last 40 %
            g["lr"] = lr * min(1.0, 0.1 + 0.9 * (1 - frac) / 0.4)
        if prior == "logistic" and frac >= 1 - coded_frac:
            cmp = compare_priors(net, val)
            info["prior_cost"] = cmp
            info["coded_prior"], info["scale_factor"] = "laplace", cmp["laplace_factor"]
            prior, log_factor = "laplace", math.log(cmp["laplace_factor"])
            log(f"switch to the coded prior: {json.dumps(cmp)}")
        x = torch.round(crops.batch(batch) * 255)
        loss = bits_per_subpixel(net, x, prior, log_factor)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        total, n = total + loss.item(), n + 1
        if step % 50 == 0:
            log(f"step {info['steps'] + step} {time.time() - start:.0f}s {prior} bpsp {total / n:.4f}")
            total, n = 0.0, 0
        if time.time() - last_save > 300:
            save_checkpoint(net.state_dict(), out, progress(info, step, start))
            last_save = time.time()
    if prior == "logistic":  # a run too short to switch still records the coded prior's fit
        cmp = compare_priors(net, val)
        info["prior_cost"] = cmp
        info["coded_prior"], info["scale_factor"] = "laplace", cmp["laplace_factor"]
    with torch.no_grad():
        info["val_bpsp"] = round(float(bits_per_subpixel(net, val, "laplace", math.log(info["scale_factor"]))), 4)
    info = progress(info, step, start)
    state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    save_checkpoint(state, out, info)
    return info


def resume_state(spec: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(float32 state, training record) from a checkpoint folder, a codec folder or the name
    of an installed codec; the record holds the architecture (`ARCH_KEYS`)."""
    if has_checkpoint(spec):
        return load_checkpoint(spec)
    config, weights = load_codec_folder(spec)
    state = {k: v.float() for k, v in weights.items()}
    info = dict(config.get("training", {}))
    info.update({k: config[k] for k in ARCH_KEYS}, scale_factor=config["scale_factor"])
    return state, info


def export_codec(checkpoint: str | Path, folder: str | Path, name: str = "idf", half: bool = True) -> dict:
    """Turn a training checkpoint into a codec folder (config.json + weights.safetensors).
    `half`: ship float16 weights (exact mode rounds them to its own grid at load anyway)."""
    from ... import registry

    state, info = load_checkpoint(Path(checkpoint))
    build({k: info[k] for k in ARCH_KEYS}).load_state_dict(state)  # refuse a mismatched state
    config = {
        "name": name,
        "family": "idf",
        "modality": "image",
        "lossless": True,
        **{k: info[k] for k in ARCH_KEYS},
        "coded_prior": "laplace",
        "scale_factor": info["scale_factor"],
        "tile": 512,
        "training": info,
    }
    weights = {k: (v.half() if half else v.float()).contiguous() for k, v in state.items()}
    registry.write_codec_folder(Path(folder), config, weights)
    return config
