"""Training of the `pixelcnn` causal pixel model: plain maximum likelihood on random crops.

Runs for a wall-clock budget with a cosine learning rate, so the same command fits a GPU
lease or a CPU afternoon, and writes a resumable float32 checkpoint every few minutes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .net import CausalPixelModel, normalize
from ...train.checkpoint import add_run, has_checkpoint, load_checkpoint, load_codec_folder, progress, save_checkpoint
from ...train.crops import RandomCrops, load_images

ARCH_KEYS = ("radius", "features", "layers", "head_hidden", "mixtures")


def build(arch: dict) -> CausalPixelModel:
    return CausalPixelModel(**{k: arch[k] for k in ARCH_KEYS if k in arch})


def architecture(model: CausalPixelModel) -> dict:
    return {
        "radius": model.radius,
        "features": model.context.out_channels,
        "layers": len(model.trunk),
        "head_hidden": model.heads[0].hidden.out_channels,
        "mixtures": model.mixtures,
    }


def train(
    data: str | Path,
    out: str | Path,
    minutes: float,
    init_state: dict[str, torch.Tensor] | None = None,
    init_info: dict | None = None,
    arch: dict | None = None,
    batch: int = 16,
    crop: int = 64,
    lr: float = 2e-3,
    device: str = "cpu",
    seed: int = 0,
    log=print,
) -> dict:
    torch.manual_seed(seed)
    info = dict(init_info or {})
    model = build(arch or info.get("arch", {})).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    info.setdefault("steps", 0)
    info.setdefault("train_minutes", 0.0)
    info.update(arch=architecture(model), batch=batch, crop=crop, data=str(data))
    add_run(info, device, minutes, lr)
    crops = RandomCrops(load_images(data), crop, device=device, seed=seed + info["steps"])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    fresh = init_state is None

    start = last_save = time.time()
    budget = minutes * 60
    step, running = 0, []
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        scale = 0.5 * (1 + math.cos(math.pi * frac))
        if fresh:
            scale *= min(1.0, (step + 1) / 100)  # warm-up only when starting from scratch
        for g in opt.param_groups:
            g["lr"] = lr * scale
        x = normalize(torch.round(crops.batch(batch) * 255))
        loss = model(x)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        running.append(loss.item())
        if step % 50 == 0:
            log(f"step {info['steps'] + step} {time.time() - start:.0f}s bpsp {sum(running) / len(running):.4f}")
            running = []
        if time.time() - last_save > 300:
            save_checkpoint(model.state_dict(), out, progress(info, step, start))
            last_save = time.time()
    info = progress(info, step, start)
    save_checkpoint(model.state_dict(), out, info)
    return info


def resume_state(spec: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(float state, training record) from a checkpoint folder, a codec folder or a codec name."""
    if has_checkpoint(spec):
        return load_checkpoint(spec)
    config, weights = load_codec_folder(spec)
    state = {k: v.float() for k, v in weights.items()}
    info = dict(config.get("training", {}))
    info["arch"] = config["arch"]
    return state, info


def export_codec(checkpoint: str | Path, folder: str | Path, name: str = "pixelcnn") -> dict:
    """Turn a training checkpoint into a shipped codec folder (config.json + float32 weights)."""
    from ... import registry
    from .codec import default_config

    state, info = load_checkpoint(Path(checkpoint))
    config = default_config(name, info["arch"])
    config["training"] = info
    weights = {k: v.float().contiguous() for k, v in state.items()}
    registry.write_codec_folder(Path(folder), config, weights)
    return config
