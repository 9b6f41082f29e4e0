"""Resumable training checkpoints: safetensors shards of at most 16 MiB and a JSON record.

A checkpoint folder holds `checkpoint.json` (the training record, and which tensor is in
which shard) and `checkpoint-NN.safetensors` files, each at most `SHARD_BYTES`, so that every
file fits what a lent GPU machine sends back. Large weight tensors are stored in float16 and
the optimizer's moments in bfloat16 (float16 would flush Adam's tiny second moments to zero,
and a zero there turns the next update into a jump); small tensors (biases, GDN and entropy
model parameters, gains) stay float32. Loading gives float32 again. Where training keeps a
moving average of the weights (`average.py`), the model tensors are the average and the
weights the optimizer steps are among the optimizer tensors (`live.*`), at the model's precision.

Folders written before the sharded format (one float32 `checkpoint.safetensors`) still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATE = "checkpoint.json"
OLD_WEIGHTS = "checkpoint.safetensors"
SHARD_BYTES = 16 * 2**20 - 2**16  # 16 MiB less room for the safetensors header
HALF_NUMEL = 4096  # model tensors at least this large are stored as float16
LIVE = "live."  # among the optimizer tensors: the weights the optimizer steps, stored as the model's


def _stored(key: str, t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu().contiguous()
    if not t.is_floating_point():
        return t
    if key.startswith("optim.") and not key.startswith("optim." + LIVE):
        return t.to(torch.bfloat16)
    return t.half() if t.numel() >= HALF_NUMEL else t.float()


def save_checkpoint(state: dict[str, torch.Tensor], folder: str | Path, info: dict,
                    optimizer: dict[str, torch.Tensor] | None = None) -> list[Path]:
    """Write the model `state`, the flattened `optimizer` state (see `optimizer_tensors`) and
    `info` into `folder`, replacing what was there only once everything is written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": _stored(f"model.{k}", v) for k, v in state.items()}
    tensors.update({f"optim.{k}": _stored(f"optim.{k}", v) for k, v in (optimizer or {}).items()})
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in tensors.items():
        n = v.numel() * v.element_size()
        if n > SHARD_BYTES:
            raise ValueError(f"tensor {k} alone is over the {SHARD_BYTES}-byte shard size")
        if size + n > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += n
    names = [f"checkpoint-{i:02d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        save_file(shard, str(folder / (name + ".tmp")))
    for name in names:
        os.replace(folder / (name + ".tmp"), folder / name)
    record = dict(info, shards=names)
    (folder / (STATE + ".tmp")).write_text(json.dumps(record, indent=2))
    os.replace(folder / (STATE + ".tmp"), folder / STATE)
    for old in folder.glob("checkpoint-*.safetensors"):  # shards of a larger earlier checkpoint
        if old.name not in names:
            old.unlink()
    return [folder / n for n in names] + [folder / STATE]


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict[str, torch.Tensor]]:
    """(float32 model state, training record, flattened optimizer state) of a checkpoint folder."""
    folder = Path(folder)
    info = json.loads((folder / STATE).read_text())
    shards = info.pop("shards", None)
    if shards is None:  # the single-file format
        return load_file(str(folder / OLD_WEIGHTS)), info, {}
    tensors: dict[str, torch.Tensor] = {}
    for name in shards:
        tensors.update(load_file(str(folder / name)))
    model = {k[6:]: v.float() if v.is_floating_point() else v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k[6:]: v.float() if v.is_floating_point() else v for k, v in tensors.items() if k.startswith("optim.")}
    return model, info, optim


def copy_weights_only(folder: str | Path, dest: str | Path) -> list[Path]:
    """Write `folder`'s checkpoint to `dest` without its optimizer state (the live weights
    included): a quarter of the size; a run resumed from it starts from the moving average with
    a new optimizer."""
    model, info, _ = load_checkpoint(folder)
    return save_checkpoint(model, dest, info)


def has_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / STATE).exists()


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "") -> dict[str, torch.Tensor]:
    """An optimizer's per-parameter state as flat named tensors (`N.exp_avg`, `N.step`, ...)."""
    out = {}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"{prefix}{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(float(v))
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str = "") -> bool:
    """Restore what `optimizer_tensors` saved, if it fits this optimizer; False otherwise."""
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if not key.startswith(prefix):
            continue
        i, name = key[len(prefix):].split(".", 1)
        state.setdefault(int(i), {})[name] = v
    params = [p for g in sd["param_groups"] for p in g["params"]]
    if not state or set(state) - set(params):
        return False
    # the same count is not enough: a run that trains other parameters (other groups) must
    # start its moments afresh, not take another parameter's
    shapes = dict(zip(params, (p.shape for g in opt.param_groups for p in g["params"])))
    if any(v.dim() and v.shape != shapes[i] for i, named in state.items() for v in named.values()):
        return False
    sd["state"] = state
    try:
        opt.load_state_dict(sd)
    except (ValueError, RuntimeError, KeyError):
        return False
    return True


def load_codec_folder(spec: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, weights) of a codec folder, given its path or an installed codec's name: where
    training starts when `--resume` names no checkpoint folder."""
    from .. import registry

    folder = Path(spec)
    if not (folder / registry.CONFIG).exists():
        folder = registry.codec_folder(str(spec))
    config = json.loads((folder / registry.CONFIG).read_text())
    return config, load_file(str(folder / config.get("weights", registry.WEIGHTS)))


def add_run(info: dict, device: str, minutes: float, lr: float, world: int = 1) -> None:
    """Append this run (hardware, budget, learning rate, GPU or CPU) to `info["runs"]`, as a
    new list, so a record the caller still holds stays as it was."""
    on_gpu = str(device).startswith("cuda")
    hardware = torch.cuda.get_device_name(device) if on_gpu else f"{os.cpu_count()}-core CPU"
    if world > 1:
        hardware = f"{world} x {hardware}"
    run = {"hardware": hardware, "minutes": minutes, "lr": lr, "kind": "gpu_minutes" if on_gpu else "cpu_minutes"}
    info["runs"] = [*info.get("runs", []), run]
