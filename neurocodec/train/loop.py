"""The one training loop: a wall-clock budget, a family's `TrainSpec`, resume and export.

    neurocodec train FAMILY --minutes M --out RUN [--resume CODEC|FOLDER|RUN] [--export DIR]

runs unchanged on the CPU and on CUDA (the data is decoded once onto the device, crops are cut
there, channels-last where the family allows; bf16 autocast where the family allows, on the
CPU too), and under `torchrun` with
DistributedDataParallel (each process a different data stream; rank 0 writes). It logs its
throughput in its first minute and every 100 steps, saves a checkpoint every few minutes and
at the end (`checkpoint.py`: shards of at most 16 MiB), and resumes model and optimizer.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..autocast import bf16
from ..errors import InputError
from .checkpoint import (
    LIVE,
    add_run,
    has_checkpoint,
    load_checkpoint,
    load_codec_folder,
    load_optimizer_tensors,
    optimizer_tensors,
    save_checkpoint,
)
from .average import WeightAverage
from .spec import TrainSpec, unwrap

SAVE_EVERY = 300  # seconds between checkpoints
WARM_UP = 200  # steps over which a new optimizer's learning rate rises
# A step whose loss is not finite, or over SPIKE times the recent mean, is skipped: one such
# batch (an idf run resumed wider at lr 1e-3 met one of about 750,000 bits per sub-pixel after
# 1,100 steps of 3.6) moved the weights so far that Kodak went from 3.53 to 4.09 bpsp. The
# legitimate spread is far smaller: context's random rate levels vary its loss about 4x.
SPIKE = 20.0


def resume_state(spec: TrainSpec, source: str | Path) -> tuple[dict, dict, dict]:
    """(model state, training record, optimizer tensors) from a checkpoint folder, a codec
    folder or an installed codec's name."""
    if has_checkpoint(source):
        state, info, optim = load_checkpoint(source)
        info.setdefault("arch", {})
        return state, info, optim
    config, weights = load_codec_folder(source)
    state, extra = spec.from_codec(config, weights)
    return state, dict(config.get("training", {}), **extra), {}


def _distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether this call joined the process group); joins it when started by
    torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    joined = world > 1 and not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if torch.cuda.is_available() and os.environ.get("NEUROCODEC_DDP_BACKEND") != "gloo"
                                else "gloo")
    return (dist.get_rank(), world, joined) if world > 1 else (0, 1, False)


def train(spec: TrainSpec, data: str | Path | list, out: str | Path, minutes: float, resume: str | None = None,
          batch: int | None = None, crop: int | None = None, lr: float | None = None, device: str = "cpu",
          seed: int = 0, log=print, ema: float = 0.999) -> dict:
    """Train for `minutes` of wall clock; returns the training record and leaves a checkpoint in
    `out` (rank 0): the weights' moving average (`ema`: its decay per step; 0: the weights
    themselves), and the live weights to resume from."""
    rank, world, joined = _distributed()
    if world > 1 and str(device).startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    state, info, optim_state = resume_state(spec, resume) if resume else ({}, {"arch": {}}, {})
    for key in spec.measures:
        info.pop(key, None)
    # batch and crop not given: the resumed run's (of this family), else the family's defaults
    same = info.get("family") == spec.family
    batch = batch or (same and info.get("batch")) or spec.defaults["batch"]
    crop = crop or (same and info.get("crop")) or spec.defaults.get("crop")
    lr = lr or spec.defaults["lr"]
    live = {k[len(LIVE):]: v for k, v in optim_state.items() if k.startswith(LIVE)}
    averaged = None
    try:
        model = spec.build(info["arch"])
        if state:
            spec.load(model, state)
            if live:  # a checkpoint's state is the average; the optimizer stepped these
                averaged = [p.detach().clone() for p in model.parameters()]
                spec.load(model, live)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        if same or isinstance(e, InputError):
            raise
        raise InputError(f"cannot resume {spec.family} from {resume}: its weights are "
                         f"{info.get('family') or 'of another family'}'s ({type(e).__name__}: {str(e)[:200]})") from None
    if rank == 0:
        log(f"{spec.family}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
            f"{json.dumps(spec.arch(model))}" + (f", resumed from {resume}" if resume else ", new"))
    model = model.to(device)
    cuda = str(device).startswith("cuda")
    if cuda and spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    info = dict(info, arch=spec.arch(model), family=spec.family, batch=batch, crop=crop, data=str(data))
    info.setdefault("steps", 0)
    info.setdefault("train_minutes", 0.0)
    add_run(info, device, minutes, lr, world)
    # the family's options: the architecture is in "arch"; the rest are recorded with each run
    # (a resumed run's defaults must not overwrite what built the model, e.g. vq --transforms)
    options = {k: v for k, v in spec.opts.items() if k not in info["arch"]}
    info["runs"][-1] = dict(info["runs"][-1], **({"options": options} if options else {}))
    autocast = _autocast(spec, device)
    if autocast is not None:
        info["runs"][-1]["precision"] = "bf16 autocast"
    # a run resumed from weights without an average (a codec folder) starts averaging at them
    if averaged is None and state:
        averaged = list(model.parameters())
    average = WeightAverage(model, ema, averaged) if ema else None
    if average:
        info["runs"][-1]["ema"] = ema
    torch.manual_seed(seed + info["steps"] + 1000 * rank)

    source = _data_source(spec, data, crop, batch, device, seed + info["steps"] + 1000 * rank, rank, world)
    spec.setup(model, source, device)
    if average:  # what does not train in this run (e.g. --learn synthesis) stays the average
        with torch.no_grad():
            for p, a in zip(average.params, average.avg):
                if not p.requires_grad:
                    p.copy_(a)
    aux = spec.aux_parameters(model)  # parameters, or param groups with their own lr
    aux_ids = {id(p) for g in aux for p in (g["params"] if isinstance(g, dict) else [g])}
    main = [p for p in model.parameters() if id(p) not in aux_ids]
    opt = torch.optim.Adam(main, lr=lr)
    aux_opt = torch.optim.Adam(aux, lr=1e-3) if aux else None
    # a new optimizer (a fresh model, or one resumed from a codec folder) warms up: Adam's first
    # steps move every weight by about the learning rate, which would undo a trained model
    fresh = not (optim_state and load_optimizer_tensors(opt, optim_state, "main."))
    if optim_state and aux_opt:
        load_optimizer_tensors(aux_opt, optim_state, "aux.")
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    def save(done: dict) -> None:
        """A checkpoint: the average as the model (what export and evaluation use), the live
        weights and the optimizer's state to resume from."""
        tensors = optimizer_tensors(opt, "main.") | (optimizer_tensors(aux_opt, "aux.") if aux_opt else {})
        if average:
            tensors |= {LIVE + k: v.clone() for k, v in spec.state(unwrap(net)).items()}  # apart from the model's
        with average.swapped() if average else contextlib.nullcontext():
            save_checkpoint(spec.state(unwrap(net)), out, done, tensors)

    def record(steps: int) -> dict:
        """The training record after `steps` steps of this run: this run's real minutes, and the
        CPU and GPU minutes of all runs so far. A run of no steps (`--minutes 0 --export`) is
        not one."""
        minutes = (time.time() - start) / 60
        runs = [*info["runs"][:-1], *([dict(info["runs"][-1], minutes=round(minutes, 2), steps=steps)] if steps else [])]
        totals = {kind: round(sum(r["minutes"] for r in runs if r["kind"] == kind), 2) for kind in ("cpu_minutes", "gpu_minutes")}
        return dict(info, steps=info["steps"] + steps, train_minutes=round(info["train_minutes"] + minutes, 2), runs=runs, **totals)

    start = last_save = last_log = time.time()
    budget, step, sums = minutes * 60, 0, {}
    units, typical, skipped = 0, None, 0
    while not _any(time.time() - start >= budget, world):
        frac = min((time.time() - start) / budget, 1.0)
        for g in opt.param_groups:
            g["lr"] = spec.lr(lr, frac) * (min(1.0, (step + 1) / WARM_UP) if fresh else 1.0)
        x = spec.prepare(source.batch(batch))
        with autocast or contextlib.nullcontext():
            loss, stats = spec.loss(net, x, frac)
        value = float(loss.detach())
        if _any(not math.isfinite(value) or (typical is not None and value > SPIKE * typical), world):
            skipped += 1
            info["runs"][-1]["skipped_steps"] = skipped
            if rank == 0:
                log(f"step {info['steps'] + step + 1}: loss {value:.4g} against a recent mean of {typical or float('nan'):.4g}; "
                    "skipped")
            continue
        typical = value if typical is None else 0.99 * typical + 0.01 * value
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if spec.clip:
            torch.nn.utils.clip_grad_norm_(main, spec.clip)
        opt.step()
        if aux_opt:
            aux_loss = spec.aux_loss(unwrap(net))
            aux_opt.zero_grad(set_to_none=True)
            aux_loss.backward()
            aux_opt.step()
        if average:
            average.update()
        step += 1
        units += x.numel() // (x.shape[1] if x.dim() == 4 else 1)
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
        now = time.time()
        if rank == 0 and (step % 100 == 0 or (now - start < 60 and now - last_log > 10)):
            log(_report(info["steps"] + step, now - start, step, units * world, spec, sums))
            last_log = now
        if rank == 0 and now - last_save > SAVE_EVERY:
            save(record(step))
            last_save = now
    info = record(step)
    if rank == 0:
        log(_report(info["steps"], time.time() - start, step, units * world, spec, sums) + " (done)")
        with average.swapped() if average else contextlib.nullcontext():
            spec.finish(unwrap(net), info)
        save(info)
    if world > 1:
        dist.barrier()
    if joined:  # left to the interpreter's exit, gloo's threads could abort a rank ("terminate called
        dist.destroy_process_group()  # without an active exception"), failing the whole run
    return info


def export(spec: TrainSpec, checkpoint: str | Path, folder: str | Path, name: str) -> dict:
    """Turn a training checkpoint into a codec folder (config.json, weights, card kept)."""
    from .. import registry

    state, info, _ = load_checkpoint(checkpoint)
    model = spec.build(info.get("arch", {}))
    spec.load(model, state)
    config, weights = spec.export(model.eval(), info, name)
    config = {"name": name, "family": spec.family, **config, "training": info}
    registry.write_codec_folder(Path(folder), config, weights)
    return config


def _autocast(spec: TrainSpec, device: str):
    """bf16 autocast where the family allows it (`spec.autocast`) and the device computes in
    bf16: on the 2-core EPYC it trains context 2.0x, bitsback 1.74x and text 1.74x faster per
    step, with losses within 0.1 % of float32 on the same batch."""
    return bf16(device) if spec.autocast else None


def _any(flag: bool, world: int) -> bool:
    """Whether any process says `flag` (to stop, or to skip a step): every process must run
    the same steps."""
    if world == 1:
        return flag
    flag = torch.tensor([float(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _report(total: int, seconds: float, steps: int, units: int, spec: TrainSpec, sums: dict) -> str:
    """A log line: steps so far, throughput, and the mean of each logged figure."""
    unit = "pixels" if spec.data_kind == "images" else "bytes"
    figures = " ".join(f"{k} {v / max(steps, 1):.4f}" for k, v in sums.items())
    seconds = max(seconds, 1e-9)
    return f"step {total} {seconds:.0f}s {steps / seconds:.2f} steps/s {units / seconds:.3g} {unit}/s | {figures}"


def _data_source(spec: TrainSpec, data, crop: int | None, batch: int, device: str, seed: int, rank: int, world: int):
    if spec.data_kind == "text":
        from .text_data import TextStreams

        return TextStreams(data, spec.opts["seq"], batch, device, rank, world)
    from .crops import RandomCrops, load_images

    return RandomCrops(load_images(data), crop, device=device, seed=seed)
