"""Does the perceptual distance order known distortions? (issue 12 item 2)

Each Kodak photo is distorted by JPEG (quality 90, 70, 50, 30, 10), Gaussian blur (sigma 0.5,
1, 2, 4 px) and Gaussian noise (sigma 2, 5, 10, 20 levels), each at increasing strength. For
every photo and distortion type, every pair of strengths is a pair whose order is known: a
metric agrees when it scores the stronger one as worse (ties disagree). The same pairs are
scored by neurocodec.perceptual.distance, PSNR and MS-SSIM.

Across types the truth is not known without human judgements; as a sanity check, each type's
mildest level must score better than every other type's strongest level (JPEG 90 < blur 4,
noise 20; ...), 6 pairs per photo.

    python bench/perceptual_ordering.py   ->  bench/results/perceptual_ordering.md
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from report import write_table

from neurocodec.bench.metrics import ms_ssim, perceptual, psnr

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "kodak"
LEVELS = {"JPEG quality": (90, 70, 50, 30, 10), "blur sigma": (0.5, 1, 2, 4), "noise sigma": (2, 5, 10, 20)}
# each metric as a "worse" score: larger means more distorted
METRICS = {"perceptual distance": perceptual, "PSNR": lambda a, b: -psnr(a, b), "MS-SSIM": lambda a, b: -ms_ssim(a, b)}


def distort(a: np.ndarray, kind: str, level, seed: int) -> np.ndarray:
    im = Image.fromarray(a)
    if kind == "JPEG quality":
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=level)
        return np.asarray(Image.open(buf).convert("RGB"))
    if kind == "blur sigma":
        return np.asarray(im.filter(ImageFilter.GaussianBlur(level)))  # Pillow's radius is the standard deviation
    noise = np.random.default_rng(seed).normal(0, level, a.shape)
    return np.clip(np.rint(a + noise), 0, 255).astype(np.uint8)


def agreement(scores: dict, pairs: list) -> float:
    return float(np.mean([scores[weaker] < scores[stronger] for weaker, stronger in pairs]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (a quick check)")
    args = ap.parse_args()
    paths = sorted(KODAK.glob("*.png"))[: args.limit]
    within, across = [], []  # (key of weaker, key of stronger); key = (photo, kind, level)
    scores = {m: {} for m in METRICS}
    seconds = dict.fromkeys(METRICS, 0.0)
    load = os.getloadavg()[0]
    for n, p in enumerate(paths):
        a = np.asarray(Image.open(p).convert("RGB"))
        for kind, levels in LEVELS.items():
            for level in levels:
                b = distort(a, kind, level, seed=n)
                for name, metric in METRICS.items():
                    t = time.perf_counter()
                    scores[name][(n, kind, level)] = metric(a, b)
                    seconds[name] += time.perf_counter() - t
            within += [((n, kind, x), (n, kind, y)) for x, y in itertools.combinations(levels, 2)]
        for k1, k2 in itertools.permutations(LEVELS, 2):
            across.append(((n, k1, LEVELS[k1][0]), (n, k2, LEVELS[k2][-1])))
        print(f"{p.name} done", flush=True)
    rows = []
    for name in METRICS:
        per_kind = [agreement(scores[name], [q for q in within if q[0][1] == kind]) for kind in LEVELS]
        rows.append(f"| {name} | {100 * agreement(scores[name], within):.1f} % | "
                    + " | ".join(f"{100 * x:.1f} %" for x in per_kind)
                    + f" | {100 * agreement(scores[name], across):.1f} % | {1000 * seconds[name] / len(scores[name]):.0f} |")
        print(rows[-1])
    means = []
    for kind, levels in LEVELS.items():
        for level in levels:
            keys = [(n, kind, level) for n in range(len(paths))]
            means.append(f"| {kind} {level} | {np.mean([scores['perceptual distance'][k] for k in keys]):.4f} | "
                         f"{-np.mean([scores['PSNR'][k] for k in keys]):.2f} | {-np.mean([scores['MS-SSIM'][k] for k in keys]):.4f} |")
    notes = ("Mean score per distortion (perceptual distance: lower is better; PSNR dB and MS-SSIM: higher is better):\n\n"
             "| distortion | perceptual | PSNR | MS-SSIM |\n|---|---:|---:|---:|\n" + "\n".join(means))
    cmd = "python bench/perceptual_ordering.py" + (f" --limit {args.limit}" if args.limit else "")
    write_table(
        "perceptual_ordering.md", "Ordering known distortions: the perceptual distance against PSNR and MS-SSIM",
        f"`{cmd}` on {len(paths)} Kodak photos (never trained on), full size: {len(within)} pairs of the same photo "
        "and distortion type at two strengths (JPEG quality 90/70/50/30/10, Gaussian blur sigma 0.5/1/2/4, "
        "Gaussian noise sigma 2/5/10/20); a metric agrees when it scores the stronger distortion worse. "
        f"Across types: {len(across)} pairs, each type's mildest level against each other type's strongest. "
        f"Weights: `neurocodec/perceptual/weights` (uniform over the 5 stages). ms per score on one thread "
        f"(load average {load:.1f}: other work shares the 2 cores).",
        ["<metric", "all pairs", *LEVELS, "across types", "ms/score"], rows, notes,
    )


if __name__ == "__main__":
    main()
