"""Train the encoder with SimCLR (NT-Xent over two augmented views), for a wall-clock budget.

    python -m neurocodec.perceptual.train --minutes 45 --out runs/ssl [--export]

Why SimCLR: on a shared 2-core CPU the encoder must be small and learn in under an hour;
contrastive learning with strong augmentations learns exactly the invariances retrieval needs
(crop, scale, brightness, JPEG), needs no momentum encoder (BYOL/DINO double the forward cost
and are touchier at small batch) and no decoder (masked prediction suits transformers and long
runs). The run checkpoints every few minutes into `--out` and resumes from it when started
again; `--export` writes the encoder (no projection head) into neurocodec/perceptual/weights.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..train.checkpoint import has_checkpoint, load_checkpoint, load_optimizer_tensors, optimizer_tensors, save_checkpoint
from .data import HELD_OUT_RULE, TwoViews, load_small, training_paths
from .encoder import CONFIG, DEFAULT_WIDTHS, WEIGHTS, WEIGHTS_DIR, Encoder, ProjectionHead

DATA = Path("../shared/data/images")  # as the codecs' training defaults: from the repository root
SAVE_EVERY = 300  # seconds between checkpoints
WARM_UP = 100  # steps of linear learning-rate warm-up for a new optimizer


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, float]:
    """SimCLR's loss over 2B projections, and how often a view's nearest other view is its pair."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    accuracy = (logits.argmax(1) == target).float().mean().item()
    return F.cross_entropy(logits, target), accuracy


def train(args) -> dict:
    torch.manual_seed(args.seed)
    encoder, head = Encoder(args.widths).to(args.device), ProjectionHead(args.widths[-1]).to(args.device)
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    info = {"steps": 0, "train_minutes": 0.0, "runs": []}
    fresh = True
    if has_checkpoint(args.out):
        state, info, optim = load_checkpoint(args.out)
        encoder.load_state_dict({k[8:]: v.float() if v.is_floating_point() else v for k, v in state.items() if k.startswith("encoder.")})
        head.load_state_dict({k[5:]: v.float() if v.is_floating_point() else v for k, v in state.items() if k.startswith("head.")})
        fresh = not load_optimizer_tensors(opt, optim)
        print(f"resumed from {args.out} at step {info['steps']}", flush=True)

    t0 = time.time()
    paths = training_paths(args.train, args.extra)
    images = [load_small(p, args.side) for p in paths]
    print(f"{len(images)} photos loaded in {time.time() - t0:.0f}s", flush=True)
    views = TwoViews(images, args.crop, seed=args.seed + info["steps"])
    info.update(data=f"{args.train} + {args.extra} less {HELD_OUT_RULE}", photos=len(images), batch=args.batch,
                crop=args.crop, side=args.side, temperature=args.temperature,
                seed=args.seed)

    encoder.train(), head.train()
    start = last_save = last_log = time.time()
    step, window, last_loss = 0, [], math.nan  # window: (loss, pair accuracy) since the last log line

    def record() -> dict:
        minutes = (time.time() - start) / 60
        gpu = str(args.device).startswith("cuda")
        run = {"hardware": torch.cuda.get_device_name() if gpu else
               "2-core CPU, one thread" if torch.get_num_threads() == 1 else f"CPU, {torch.get_num_threads()} threads",
               "kind": "gpu_minutes" if gpu else "cpu_minutes",
               "minutes": round(minutes, 2), "steps": step, "lr": args.lr}
        return dict(info, steps=info["steps"] + step, train_minutes=round(info["train_minutes"] + minutes, 2),
                    runs=[*info["runs"], run], last_loss=round(last_loss, 4))

    def state() -> dict:
        return {f"encoder.{k}": v.cpu() for k, v in encoder.state_dict().items()} | {f"head.{k}": v.cpu() for k, v in head.state_dict().items()}

    while time.time() - start < args.minutes * 60:
        frac = (time.time() - start) / (args.minutes * 60)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * frac)) * (min(1.0, (step + 1) / WARM_UP) if fresh else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        a, b = (v.to(args.device, non_blocking=True) for v in views.batch(args.batch))
        loss, acc = nt_xent(head(encoder(a)), head(encoder(b)), args.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        window.append((loss.item(), acc))
        now = time.time()
        if now - last_log > args.log_every:
            last_loss = sum(w[0] for w in window) / len(window)
            print(f"step {info['steps'] + step} {now - start:.0f}s {step / (now - start):.3f} steps/s lr {lr:.2e} | "
                  f"loss {last_loss:.4f} pair-top1 {sum(w[1] for w in window) / len(window):.3f}", flush=True)
            window, last_log = [], now
        if now - last_save > SAVE_EVERY:
            save_checkpoint(state(), args.out, record(), optimizer_tensors(opt))
            last_save = now
    if window:
        last_loss = sum(w[0] for w in window) / len(window)
    final = record()
    save_checkpoint(state(), args.out, final, optimizer_tensors(opt))
    print(f"done: {final['steps']} steps in all, {final['train_minutes']} minutes, last loss {final['last_loss']}", flush=True)
    return final


def export(checkpoint: str | Path, folder: str | Path = WEIGHTS_DIR, widths: tuple[int, ...] = DEFAULT_WIDTHS) -> Path:
    """Write the encoder of a checkpoint as `folder`/encoder.safetensors (float16 kernels,
    float32 batch-norm) and `folder`/config.json (architecture and training record)."""
    from safetensors.torch import save_file

    state, info, _ = load_checkpoint(checkpoint)
    weights = {}
    for k, v in state.items():
        if k.startswith("encoder."):
            v = v.contiguous()
            weights[k[8:]] = v.half() if v.dim() == 4 else v.float() if v.is_floating_point() else v
    Encoder(widths).load_state_dict(weights)  # fails loudly on a mismatch
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / WEIGHTS))
    config = {"arch": {"widths": list(widths)}, "weights": WEIGHTS, "features": "mean over space of the last stage, L2-normalised",
              "features_side": 96, "training": info}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--out", default="runs/ssl")
    ap.add_argument("--train", default=str(DATA / "train"))
    ap.add_argument("--extra", default=str(DATA / "extra"))
    ap.add_argument("--batch", type=int, default=128, help="photos per step (two views each)")
    ap.add_argument("--crop", type=int, default=64, help="side of a view in pixels")
    ap.add_argument("--side", type=int, default=256, help="photos are first shrunk to this shorter side")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--widths", default=",".join(map(str, DEFAULT_WIDTHS)), help="the five stages' widths")
    ap.add_argument("--log-every", type=float, default=60, help="seconds between log lines")
    ap.add_argument("--export", action="store_true", help="then write the encoder into neurocodec/perceptual/weights")
    ap.add_argument("--export-to", default="", help="... or into this folder (the FID/KID evaluation encoder: "
                                                     "neurocodec/perceptual/eval_weights)")
    args = ap.parse_args()
    args.widths = tuple(int(w) for w in args.widths.split(","))
    if args.minutes > 0:
        train(args)
    if args.export or args.export_to:
        print(f"exported to {export(args.out, args.export_to or WEIGHTS_DIR, args.widths)}")


if __name__ == "__main__":
    main()
