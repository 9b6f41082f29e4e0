"""Training of the `bitsback` VAE: minimize the negative ELBO in bits per sub-pixel.

The loss is exactly what the codec pays (up to the latents' discretization and the
initial bits): -log2 p(x|z1) under the coded discretized Laplace, plus the analytic KL terms
of both latent levels. Runs for a wall-clock budget and writes a resumable float32
checkpoint every few minutes; it resumes from a checkpoint or from a shipped codec.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .net import BitsBackNet
from ...train.checkpoint import add_run, has_checkpoint, load_checkpoint, load_codec_folder, progress, save_checkpoint
from ...train.crops import RandomCrops, load_images

ARCH = ("levels", "z1", "z2", "feat", "hidden", "width", "depth", "interp")


def train(
    data: str | Path,
    out: str | Path,
    minutes: float,
    init_state: dict[str, torch.Tensor] | None = None,
    init_info: dict | None = None,
    batch: int = 8,
    crop: int = 64,
    lr: float = 1e-3,
    device: str = "cpu",
    seed: int = 0,
    log=print,
    **arch,
) -> dict:
    """Train for `minutes` of wall time; returns the training record. `arch`
    (levels, z1, z2, feat, hidden, width, depth) defaults to the resumed record's sizes."""
    torch.manual_seed(seed + (init_info or {}).get("steps", 0))
    out = Path(out)
    info = dict(init_info or {})
    sizes = {k: info[k] for k in ARCH if k in info} | arch
    model = BitsBackNet(**sizes).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    info.setdefault("steps", 0)
    info.setdefault("train_minutes", 0.0)
    info.update(model.config(), batch=batch, crop=crop, data=str(data), device=device)
    add_run(info, device, minutes, lr)
    crops = RandomCrops(load_images(data), crop, device=device, seed=seed + info["steps"])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = last_save = time.time()
    budget = minutes * 60
    stats = {"x": 0.0, "z1": 0.0, "z2": 0.0}
    n = step = 0
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        for g in opt.param_groups:  # cosine decay to a tenth over the run
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        x = crops.batch(batch) * (255 / 128) - 1  # (x - 128) / 128
        terms = model(x)
        per = x[0].numel()
        loss = sum(v.mean() for v in terms.values()) / per
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        n += 1
        for k, v in terms.items():
            stats[k] += v.mean().item() / per
        if step % 100 == 0:
            msg = " ".join(f"{k} {v / n:.4f}" for k, v in stats.items())
            log(f"step {info['steps'] + step} {time.time() - start:.0f}s bpsp {sum(stats.values()) / n:.4f} ({msg})")
            stats, n = dict.fromkeys(stats, 0.0), 0
        if time.time() - last_save > 300:
            save_checkpoint(model.state_dict(), out, progress(info, step, start))
            last_save = time.time()
    info = progress(info, step, start)
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(state, out, info)
    return info


def resume_state(spec: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(float state, training record) from a checkpoint folder, a codec folder or a codec
    name: training resumes from whatever was saved or shipped last."""
    if has_checkpoint(spec):
        return load_checkpoint(spec)
    config, weights = load_codec_folder(spec)
    info = dict(config.get("training", {}), **config["arch"])
    return {k: v.float() for k, v in weights.items()}, info


def export_codec(checkpoint: str | Path, folder: str | Path, name: str = "bitsback",
                 half: bool = False, extra: dict | None = None) -> dict:
    """Turn a training checkpoint into a codec folder (config.json + weights.safetensors).
    Weights ship as float32: float16 (`half`) halves the file but cost 0.1 % in bits on
    Kodak crops (exact mode's 2**-16 weight grid is finer than float16's)."""
    from ... import registry

    state, info = load_checkpoint(Path(checkpoint))
    model = BitsBackNet(**{k: info[k] for k in ARCH if k in info})
    model.load_state_dict(state)
    weights = {k: (v.half() if half else v.float()).contiguous() for k, v in model.state_dict().items()}
    config = {
        "name": name,
        "family": "bitsback",
        "modality": "image",
        "lossless": True,
        "arch": model.config(),
        "tile": 128,
        "chunk_pixels": 1 << 21,
        "training": info,
        **(extra or {}),
    }
    registry.write_codec_folder(Path(folder), config, weights)
    return config
