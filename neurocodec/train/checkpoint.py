"""Resumable training checkpoints: float32 tensors (safetensors) and a JSON record beside them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CHECKPOINT = "checkpoint.safetensors"
STATE = "checkpoint.json"


def save_checkpoint(state: dict[str, torch.Tensor], folder: Path, info: dict) -> None:
    """Write both files atomically, so an interrupted run leaves the previous checkpoint."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CHECKPOINT + ".tmp")
    save_file({k: v.detach().float().contiguous().cpu() for k, v in state.items()}, str(tmp))
    os.replace(tmp, folder / CHECKPOINT)
    (folder / (STATE + ".tmp")).write_text(json.dumps(info, indent=2))
    os.replace(folder / (STATE + ".tmp"), folder / STATE)


def load_checkpoint(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    folder = Path(folder)
    return load_file(str(folder / CHECKPOINT)), json.loads((folder / STATE).read_text())


def has_checkpoint(folder: str | Path) -> bool:
    return (Path(folder) / CHECKPOINT).exists()


def progress(info: dict, steps: int, start: float) -> dict:
    """The training record after `steps` more steps of a run that began at `start`."""
    import time

    done = dict(info)
    done["steps"] = info["steps"] + steps
    done["train_minutes"] = round(info["train_minutes"] + (time.time() - start) / 60, 2)
    return done


def add_run(info: dict, device: str, minutes: float, lr: float) -> None:
    """Append this run (hardware, budget, learning rate, GPU or CPU) to `info["runs"]`, as a
    new list, so a record the caller still holds stays as it was."""
    import os

    on_gpu = str(device).startswith("cuda")
    hardware = torch.cuda.get_device_name(device) if on_gpu else f"{os.cpu_count()}-core CPU"
    run = {"hardware": hardware, "minutes": minutes, "lr": lr, "kind": "gpu_minutes" if on_gpu else "cpu_minutes"}
    info["runs"] = [*info.get("runs", []), run]


def load_codec_folder(spec: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, weights) of a codec folder, given its path or an installed codec's name: where
    a `resume_state` starts when `spec` is not a checkpoint folder."""
    from .. import registry

    folder = Path(spec)
    if not (folder / registry.CONFIG).exists():
        folder = registry.codec_folder(str(spec))
    config = json.loads((folder / registry.CONFIG).read_text())
    return config, load_file(str(folder / config.get("weights", registry.WEIGHTS)))
