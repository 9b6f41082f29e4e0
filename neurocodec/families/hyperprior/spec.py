"""Training of the variable-rate hyperprior: one network, every rate level in each batch.

Each crop of a batch draws a continuous rate level in [0, L-1]; its lambda interpolates the
trained lambdas geometrically, exactly as its gains do, so every quality between two trained
levels is trained too. Runs for a wall-clock budget, so the same command fits a GPU lease or
a CPU afternoon, and writes a resumable float32 checkpoint every few minutes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .net import LAMBDAS, VariableRateHyperprior
from ...train.checkpoint import add_run, has_checkpoint, load_checkpoint, load_codec_folder, progress, save_checkpoint
from ...train.crops import RandomCrops, load_images

def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The learned tensors only: compressai's derived CDF buffers are rebuilt, not stored."""
    return {
        k: v.detach().float().contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith("gaussian_conditional.") and "._" not in k
    }


def train(
    data: str | Path,
    out: str | Path,
    minutes: float,
    init_state: dict[str, torch.Tensor] | None = None,
    init_info: dict | None = None,
    N: int = 96,
    M: int = 160,
    batch: int = 8,
    crop: int = 128,
    lr: float = 2e-4,
    device: str = "cpu",
    seed: int = 0,
    log=print,
) -> dict:
    torch.manual_seed(seed)
    out = Path(out)
    model = VariableRateHyperprior(N=N, M=M).to(device)
    if init_state is not None:
        model.load_learned(init_state)
    info = dict(init_info or {})
    info.setdefault("steps", 0)
    info.setdefault("train_minutes", 0.0)
    info.update(N=N, M=M, batch=batch, crop=crop, data=str(data), device=device)
    add_run(info, device, minutes, lr)
    crops = RandomCrops(load_images(data), crop, device=device, seed=seed + info["steps"])

    main_params = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    opt = torch.optim.Adam(main_params, lr=lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    log_lambdas = torch.tensor(LAMBDAS, device=device).log()

    start = time.time()
    budget = minutes * 60
    last_save = start
    stats = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}
    step = 0
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        for g in opt.param_groups:  # constant, then a quarter in the last fifth
            g["lr"] = lr if frac < 0.8 else lr / 4
        x = crops.batch(batch)
        level = torch.rand(batch, device=device) * (model.levels - 1)
        lo = level.floor().long().clamp(max=model.levels - 2)
        a = level - lo
        lam = ((1 - a) * log_lambdas[lo] + a * log_lambdas[lo + 1]).exp()

        out_ = model(x, level)
        num_pixels = x.shape[2] * x.shape[3]
        bits = sum(-torch.log2(l).flatten(1).sum(1) for l in out_["likelihoods"].values())
        bpp = bits / num_pixels
        mse = ((out_["x_hat"] - x) ** 2).flatten(1).mean(1)
        loss = (lam * 255**2 * mse + bpp).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        aux_loss = model.entropy_bottleneck.loss()
        aux_opt.zero_grad()
        aux_loss.backward()
        aux_opt.step()

        step += 1
        stats["loss"] += loss.item()
        stats["bpp"] += bpp.mean().item()
        stats["mse"] += mse.mean().item()
        stats["n"] += 1
        if step % 100 == 0:
            n = stats.pop("n")
            psnr = -10 * math.log10(max(stats["mse"] / n, 1e-10))
            log(f"step {info['steps'] + step} {time.time() - start:.0f}s loss {stats['loss'] / n:.4f} "
                f"bpp {stats['bpp'] / n:.3f} psnr(avg mse) {psnr:.2f}")
            stats = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}
        if time.time() - last_save > 300:
            save_checkpoint(trainable_state(model), out, progress(info, step, start))
            last_save = time.time()
    info = progress(info, step, start)
    save_checkpoint(trainable_state(model), out, info)
    return info


def resume_state(spec: str) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(float state, training record, network size) from a codec name, a codec folder or a
    checkpoint folder: training resumes from whatever shipped or was saved last."""
    from .codec import float_state

    if has_checkpoint(spec):
        state, info = load_checkpoint(spec)
        return state, info, {"N": info["N"], "M": info["M"]}
    config, weights = load_codec_folder(spec)
    state = float_state(weights)
    return state, dict(config.get("training", {})), {"N": config["N"], "M": config["M"]}


def export_codec(checkpoint: str | Path, folder: str | Path, name: str = "hyperprior") -> dict:
    """Turn a training checkpoint into a shipped codec folder (config.json + weights)."""
    from ... import registry
    from .codec import default_config, export_weights

    state, info = load_checkpoint(Path(checkpoint))
    net = VariableRateHyperprior(N=info["N"], M=info["M"])
    net.load_learned(state)
    config = default_config(name, net)
    config["training"] = info
    registry.write_codec_folder(Path(folder), config, export_weights(net))
    return config
