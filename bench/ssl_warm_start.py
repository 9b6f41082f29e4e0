"""Does starting a codec's analysis transform from the self-supervised encoder speed its training?

    python bench/ssl_warm_start.py [--minutes 20] [--lr 5e-4]   ->  bench/results/ssl_warm_start.md / .csv

Two copies of one codec, trained side by side, step for step on the same crops: a mean-scale
hyperprior (compressai's `MeanScaleHyperprior`, N = 64, M = 96) whose analysis transform g_a
is the self-supervised encoder's architecture (five VGG stages, stride 16,
neurocodec/perceptual/weights) followed by a 1x1 convolution to the M latent channels. One
copy starts g_a from the shipped encoder's weights, the other from a random initialisation;
everything else (seed, synthesis, hyperprior, crops, optimiser) is the same. Loss: bits per
pixel + lambda 255^2 MSE with lambda = 0.01, batches of 8 crops of 128 px from the training
photos (images/train and the non-held-out images/extra, as the encoder saw).

At every evaluation the two models code 8 Kodak centre crops of 256 px with compressai's
entropy coder (real bitstreams, decoded back): bpp from the strings' bytes, PSNR of the
decoded crops. "Equal steps" is the comparison the issue asks for; the CPU minutes per step
are the same for both (same architecture).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from compressai.models import MeanScaleHyperprior
from PIL import Image
from torch import nn

from neurocodec.perceptual.data import training_paths
from neurocodec.perceptual.encoder import MEAN, SCALE, Encoder, load_encoder
from neurocodec.train.crops import RandomCrops, load_images

from report import RESULTS, write_table

DATA = Path(__file__).resolve().parent.parent.parent / "shared/data/images"
LAMBDA = 0.01


class SSLAnalysis(nn.Module):
    """The encoder's stages on [0, 1] pixels, then a 1x1 convolution to `m` channels."""

    def __init__(self, encoder: Encoder, m: int):
        super().__init__()
        self.stages = encoder.stages
        self.out = nn.Conv2d(encoder.dim, m, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = (x * 255 - MEAN) / SCALE
        for stage in self.stages:
            h = stage(h)
        return self.out(h)


def build(pretrained: bool, seed: int) -> MeanScaleHyperprior:
    """The codec; both copies draw the same random numbers, so only g_a's stages differ."""
    torch.manual_seed(seed)
    model = MeanScaleHyperprior(64, 96)
    shipped = load_encoder()
    encoder = Encoder(shipped.widths)
    if pretrained:
        encoder.load_state_dict(shipped.state_dict())
    model.g_a = SSLAnalysis(encoder, 96)
    return model


def loss_of(model, x) -> torch.Tensor:
    out = model(x)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bits = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2) * pixels)
    return bits + LAMBDA * 255**2 * torch.mean((out["x_hat"] - x) ** 2)


@torch.no_grad()
def evaluate(model, crops: torch.Tensor) -> tuple[float, float]:
    """Mean bpp of the real strings and mean PSNR of the decoded crops."""
    model.eval()
    model.update(force=True)
    bpp, psnr = [], []
    for x in crops:
        enc = model.compress(x[None])
        nbytes = sum(len(s[0]) for s in enc["strings"])
        y = model.decompress(enc["strings"], enc["shape"])["x_hat"].clamp(0, 1)
        bpp.append(8 * nbytes / (x.shape[1] * x.shape[2]))
        mse = torch.mean((torch.round(y * 255) - torch.round(x * 255)) ** 2).item()
        psnr.append(10 * math.log10(255**2 / max(mse, 1e-10)))
    model.train()
    return float(np.mean(bpp)), float(np.mean(psnr))


def kodak_crops(n: int = 8, side: int = 256) -> torch.Tensor:
    out = []
    for path in sorted((DATA / "kodak").glob("kodim*.png"))[:n]:
        x = np.asarray(Image.open(path).convert("RGB"))
        t, left = (x.shape[0] - side) // 2, (x.shape[1] - side) // 2
        out.append(torch.from_numpy(x[t : t + side, left : left + side].copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget for both copies together")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--every", type=int, default=200, help="steps between evaluations")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    paths = training_paths(DATA / "train", DATA / "extra")
    crops = RandomCrops(load_images(paths), 128, seed=args.seed)
    models = {"from the SSL encoder": build(True, args.seed), "random": build(False, args.seed)}
    opts = {k: torch.optim.Adam(m.parameters(), lr=args.lr) for k, m in models.items()}
    test = kodak_crops()
    rows, step, start, load = [], 0, time.time(), os.getloadavg()[0]
    while True:
        if step % args.every == 0:
            for name, model in models.items():
                bpp, psnr = evaluate(model, test)
                rows.append((step, name, bpp, psnr))
                print(f"step {step} {name}: {bpp:.4f} bpp {psnr:.2f} dB", flush=True)
        if time.time() - start > args.minutes * 60:
            break
        x = crops.batch(8)
        for name, model in models.items():
            loss = loss_of(model, x) + model.aux_loss()
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
        step += 1
    (RESULTS / "ssl_warm_start.csv").write_text("step,start,bpp,psnr\n" + "".join(
        f"{s},{n},{b:.5f},{p:.4f}\n" for s, n, b, p in rows))
    table = []
    for s in sorted({r[0] for r in rows}):
        ssl, rnd = ([r for r in rows if r[0] == s and r[1] == n][0] for n in models)
        table.append(f"| {s} | {ssl[2]:.4f} | {ssl[3]:.2f} | {rnd[2]:.4f} | {rnd[3]:.2f} | "
                     f"{ssl[3] - rnd[3]:+.2f} dB, {100 * (ssl[2] / rnd[2] - 1):+.1f} % bpp |")
    write_table(
        "ssl_warm_start.md", "Starting a codec's analysis transform from the self-supervised encoder",
        f"`python bench/ssl_warm_start.py --minutes {args.minutes:g} --lr {args.lr:g}` ({step} steps each, "
        f"{(time.time() - start) / 60:.1f} minutes for both on one thread of the 2-core CPU, load average {load:.1f} at the start). " + " ".join(
            __doc__.split("\n\n")[2:4]).replace("\n", " "),
        ["step", "SSL start: bpp", "PSNR dB", "random start: bpp", "PSNR dB", "SSL - random"], table)
    print(f"wrote {RESULTS / 'ssl_warm_start.md'}")


if __name__ == "__main__":
    main()
