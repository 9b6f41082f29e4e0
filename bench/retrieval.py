"""Retrieval with neurocodec.features (issue 12 item 5): each original photo is looked up,
among all originals, from a strongly altered copy (a random crop of 50-70 % of the area,
resized to 50-100 %, brightness changed by 20-35 % up or down, saved as JPEG quality 30).

The gallery is Kodak (24) and the held-out tenth of images/extra (neurocodec.perceptual.data:
never trained on); every original gets `--copies` altered copies (seeded). Rows: the shipped
encoder (mean-pooled as in training: neurocodec.features; and max-pooled, MAC); the same
network untrained (random weights), and 8x8 thumbnails, as baselines.

    python bench/retrieval.py [--copies 3]   ->  bench/results/retrieval.md

The last rows search a compressed archive: the gallery is each original's `vq` file, embedded
from its coded latent without decoding pixels (neurocodec.perceptual.latent), or decoded.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from report import write_table

import neurocodec
from neurocodec.perceptual.data import held_out_paths
from neurocodec.perceptual.latent import embed_file
from neurocodec.perceptual.embedding import embed
from neurocodec.perceptual.encoder import DEFAULT_WIDTHS, WEIGHTS_DIR, Encoder, load_encoder, read_config

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"


def alter(im: Image.Image, rng: random.Random) -> Image.Image:
    """A strongly altered copy: crop, resize, brightness, JPEG q 30."""
    area, aspect = rng.uniform(0.5, 0.7), rng.uniform(0.9, 1.1)
    w = min(im.width, round(im.width * (area * aspect) ** 0.5))
    h = min(im.height, round(im.height * area / (w / im.width)))
    left, top = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
    out = im.crop((left, top, left + w, top + h))
    scale = rng.uniform(0.5, 1.0)
    out = out.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
    out = ImageEnhance.Brightness(out).enhance(1 + rng.choice((-1, 1)) * rng.uniform(0.2, 0.35))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=30)
    return Image.open(buf).convert("RGB")


def thumbnail(a: np.ndarray) -> np.ndarray:
    """8x8 RGB thumbnail, zero mean and unit length (a pixel baseline)."""
    v = np.asarray(Image.fromarray(a).resize((8, 8), Image.BOX), np.float32).ravel()
    v -= v.mean()
    return v / (np.linalg.norm(v) + 1e-9)


def accuracy(gallery: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(top-1, top-5) of cosine-similarity retrieval."""
    order = np.argsort(-(queries @ gallery.T), axis=1)
    return float(np.mean(order[:, 0] == truth)), float(np.mean((order[:, :5] == truth[:, None]).any(1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=3, help="altered copies per original")
    ap.add_argument("--limit", type=int, default=None, help="only the first N originals (a quick check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None, help="an encoder folder other than the shipped one (e.g. a checkpoint's export)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    paths = sorted((DATA / "kodak").glob("*.png")) + held_out_paths(DATA / "extra")
    paths = paths[: args.limit]
    originals = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    rng = random.Random(args.seed)
    queries = [(i, np.asarray(alter(Image.fromarray(a), rng))) for i, a in enumerate(originals) for _ in range(args.copies)]
    truth = np.array([i for i, _ in queries])
    folder = args.weights or WEIGHTS_DIR
    side = read_config(folder)["features_side"]
    untrained = Encoder(DEFAULT_WIDTHS).eval()
    methods = {
        "neurocodec.features (shipped encoder, mean-pooled)": lambda a: embed(load_encoder(folder), a, side),
        "shipped encoder, max-pooled (MAC)": lambda a: embed(load_encoder(folder), a, side, "max"),
        "same network, untrained (random weights)": lambda a: embed(untrained, a, side),
        "8x8 thumbnail pixels": thumbnail,
    }
    rows, load = [], os.getloadavg()[0]
    for name, fn in methods.items():
        t = time.perf_counter()
        g = np.stack([fn(a) for a in originals])
        q = np.stack([fn(a) for _, a in queries])
        top1, top5 = accuracy(g, q, truth)
        ms = 1000 * (time.perf_counter() - t) / (len(originals) + len(queries))
        rows.append(f"| {name} | {g.shape[1]} | {100 * top1:.1f} % | {100 * top5:.1f} % | {ms:.0f} |")
        print(rows[-1], flush=True)
    # a compressed archive: the gallery is vq .ncd files, embedded from their coded latent (no
    # pixels decoded) or decoded first; the queries stay pixel features (one vector space)
    pixel_queries = np.stack([embed(load_encoder(folder), a, side) for _, a in queries])
    vq = neurocodec.load_codec("vq")
    for q in (50, 12):
        blobs = [vq.encode(a, quality=q) for a in originals]
        for how, fn in ((f"vq .ncd files (q {q}), embedded from the coded latent, no pixels decoded", embed_file),
                        (f"vq .ncd files (q {q}), decoded, then neurocodec.features",
                         lambda b: embed(load_encoder(folder), neurocodec.decompress(b), side))):
            t = time.perf_counter()
            g = np.stack([fn(b) for b in blobs])
            ms = 1000 * (time.perf_counter() - t) / len(blobs)
            top1, top5 = accuracy(g, pixel_queries, truth)
            rows.append(f"| gallery: {how} | {g.shape[1]} | {100 * top1:.1f} % | {100 * top5:.1f} % | {ms:.0f} |")
            print(rows[-1], flush=True)
    n_kodak = sum(1 for p in paths if p.parent.name == "kodak")
    cmd = "python bench/retrieval.py" + (f" --copies {args.copies}" if args.copies != 3 else "") + (f" --limit {args.limit}" if args.limit else "")
    if args.weights:
        print("(not written: --weights is for trying a checkpoint)")
        return
    write_table(
        "retrieval.md", "Retrieval: finding the original photo from a strongly altered copy",
        f"`{cmd}`: a gallery of {len(paths)} originals ({n_kodak} Kodak, {len(paths) - n_kodak} held-out photos of "
        f"images/extra, none seen in training), {len(queries)} queries ({args.copies} per original, seed {args.seed}): "
        "a random crop of 50-70 % of the area, resized to 50-100 %, brightness changed by 20-35 % up or down, "
        "saved as JPEG quality 30. Nearest original by cosine similarity. The last rows search a compressed "
        "archive: the gallery is the originals' vq files, the queries pixel features as above "
        "(neurocodec.perceptual.latent). ms per image is the embedding time (of the gallery, in those rows) on one "
        f"thread (load average {load:.1f}: other work shares the 2 cores).",
        ["<method", "dims", "top-1", "top-5", "ms/image"], rows,
    )


if __name__ == "__main__":
    main()
