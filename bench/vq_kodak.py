"""The `vq` codec on Kodak: every operating point (one per stage count) against the context
codec, JPEG, WebP and AVIF at the same bit rate (PSNR, MS-SSIM and the perceptual distance of
neurocodec.perceptual), and the bits its learned prior saves.

    python bench/vq_kodak.py [--codec vq] [--images 24] [--keep jpeg,webp,avif]   ->  bench/results/vq_kodak.md / .csv

`--keep` takes the named classic codecs' rows from the committed CSV instead of coding them
again (their output does not change between commits; the neural codecs' does).

All from real files decoded back, one process. "At the same bpp" interpolates a codec's mean
Kodak curve (PSNR, MS-SSIM in dB and the distance against log bpp) at the VQ point's mean bpp; below a
codec's lowest rate the cell gives that codec's lowest point instead of extrapolating.
The prior's saving compares the file's payload with log2 K bits for every coded index.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

import neurocodec
from neurocodec import container
from neurocodec.bench.baselines import get_baseline
from neurocodec.bench.images import plot_rd
from neurocodec.bench.metrics import ms_ssim, ms_ssim_db, psnr
from neurocodec.families.vq.codec import stages_for
from neurocodec.families.vq.net import STRIDE
from neurocodec.perceptual import distance

from report import RESULTS, write_table

KODAK = Path(__file__).resolve().parent.parent.parent / "shared/data/images/kodak"
OTHERS = {"context": (1, 5, 10, 20, 35, 50), "jpeg": (1, 3, 5, 8, 12, 20, 30), "webp": (1, 2, 5, 10, 20, 35),
          "avif": (1, 5, 10, 15, 20, 30, 40)}


def curve(rows: list[tuple], name: str) -> list[tuple[float, float, float, float]]:
    """Mean (bpp, PSNR, MS-SSIM dB, distance) per quality of `name`, by rate (MS-SSIM in dB of
    its mean)."""
    out = []
    for q in sorted({r[1] for r in rows if r[0] == name}):
        rs = [r for r in rows if r[0] == name and r[1] == q]
        out.append((np.mean([r[2] for r in rs]), np.mean([r[3] for r in rs]), ms_ssim_db(np.mean([r[4] for r in rs])),
                    np.mean([r[5] for r in rs])))
    return sorted(out)


def at_rate(points: list[tuple[float, ...]], bpp: float) -> tuple[float, ...] | None:
    """(PSNR, MS-SSIM dB, distance) of a curve at `bpp`, linear in log bpp; None outside its rates."""
    rates = [p[0] for p in points]
    if not points or bpp < rates[0] or bpp > rates[-1]:
        return None
    x = np.log([max(r, 1e-9) for r in rates])
    return tuple(float(np.interp(math.log(bpp), x, [p[i] for p in points])) for i in (1, 2, 3))


def kept_rows(names: set[str], images: int) -> list[tuple]:
    """The committed CSV's rows of the codecs `names` for the first `images` images (each
    codec's rows are in image order there)."""
    kept: dict[str, list[tuple]] = {n: [] for n in sorted(names)}
    for line in (RESULTS / "vq_kodak.csv").read_text().splitlines()[1:]:
        c, q, *rest = line.split(",")
        if c in kept:
            kept[c].append((c, int(q), *map(float, rest)))
    out = []
    for n, rows in kept.items():
        need = len(OTHERS[n]) * images
        if len(rows) < need:
            raise SystemExit(f"the committed vq_kodak.csv has fewer than {images} images of {n}")
        out += rows[:need]
    return out


def cell(values) -> str:
    return f"{values[0]:.2f} / {values[1]:.2f} / {values[2]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="vq")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--keep", default="", help="classic codecs whose rows come from the committed CSV")
    args = ap.parse_args()
    keep, classic = {n for n in args.keep.split(",") if n}, set(OTHERS) - {"context"}
    if not keep <= classic:
        raise SystemExit(f"--keep takes classic codecs among {', '.join(sorted(classic))}")
    vq = neurocodec.load_codec(args.codec)
    stages, log2k = vq.net.stages, math.log2(vq.net.codes)
    qualities = vq.bench_qualities
    others = {n: (neurocodec.load_codec(n) if n == "context" else get_baseline(n), qs) for n, qs in OTHERS.items()}
    rows, saving, load = kept_rows(keep, args.images), {}, os.getloadavg()[0]
    for path in sorted(KODAK.glob("kodim*.png"))[: args.images]:
        x = np.asarray(Image.open(path).convert("RGB"))
        px = x.shape[0] * x.shape[1]
        for q in qualities:
            t = time.perf_counter(); blob = vq.encode(x, quality=q); enc = time.perf_counter() - t
            t = time.perf_counter(); y = vq.decode(blob); dec = time.perf_counter() - t
            payload = 8 * sum(len(c) for c in container.unpack(blob).chunks)
            flat = stages_for(q, stages) * math.ceil(x.shape[0] / STRIDE) * math.ceil(x.shape[1] / STRIDE) * log2k
            saving.setdefault(q, []).append(1 - payload / flat)
            rows.append((args.codec, q, 8 * len(blob) / px, psnr(x, y), ms_ssim(x, y), distance(x, y), enc, dec))
        for name, (codec, qs) in others.items():
            for q in qs if name not in keep else ():
                blob = codec.encode(x, quality=q)
                y = codec.decode(blob)
                rows.append((name, q, 8 * len(blob) / px, psnr(x, y), ms_ssim(x, y), distance(x, y), 0.0, 0.0))
        print(path.name, flush=True)
    (RESULTS / "vq_kodak.csv").write_text("codec,quality,bpp,psnr,ms_ssim,distance,encode_s,decode_s\n" +
                                          "".join(",".join(map(str, r)) + "\n" for r in rows))
    curves = {n: curve(rows, n) for n in others}
    table = []
    for q in qualities:
        rs = [r for r in rows if r[0] == args.codec and r[1] == q]
        b, p, d = (float(np.mean([r[i] for r in rs])) for i in (2, 3, 5))
        m = ms_ssim_db(float(np.mean([r[4] for r in rs])))
        cells = []
        for n in others:
            v = at_rate(curves[n], b)
            low = curves[n][0]
            cells.append(f"its lowest, {low[0]:.3f} bpp: {cell(low[1:])}" if v is None and b < low[0] else
                         "above its range" if v is None else cell(v))
        table.append(f"| {q} | {stages_for(q, stages)} | {b:.4f} | {100 * np.mean(saving[q]):.1f} % | {p:.2f} | {m:.2f} | {d:.3f} | "
                     + " | ".join(cells) + f" | {np.mean([r[6] for r in rs]):.2f} / {np.mean([r[7] for r in rs]):.2f} |")
        print(table[-1], flush=True)
    lows = "; ".join(f"{n} {curves[n][0][0]:.3f}" for n in others)
    write_table(
        "vq_kodak.md", f"Kodak: the `{args.codec}` codec at its operating points",
        f"`python bench/vq_kodak.py --codec {args.codec} --images {args.images}`: {args.images} Kodak images, real files "
        f"decoded back, one process on the 2-core CPU (load average {load:.1f} at the start: other work shared it). "
        f"Each row is one stage count (-q picks it); means over the images. Prior saving: 1 - payload bits / "
        f"(indices x log2 {vq.net.codes}). The other codecs are given as PSNR / MS-SSIM dB / distance at the VQ point's bpp, "
        "interpolated on their mean curves (context q " + ", ".join(map(str, OTHERS["context"])) + "; JPEG 4:2:0 q "
        + ", ".join(map(str, OTHERS["jpeg"])) + "; WebP q " + ", ".join(map(str, OTHERS["webp"])) + "; AVIF 4:2:0 q "
        + ", ".join(map(str, OTHERS["avif"])) + ")."
        + (f" The rows of {', '.join(sorted(keep))} are the committed CSV's (`--keep`)." if keep else ""),
        ["quality", "stages", "bpp", "prior saving", "PSNR dB", "MS-SSIM dB", "distance",
         *(f"{n} at that bpp" for n in others), "encode / decode s"],
        table,
        notes=f"Lowest mean rate each other codec reached here: {lows} bpp. MS-SSIM dB is -10 log10(1 - mean "
              "MS-SSIM); distance: neurocodec.perceptual.distance, lower is better (its scale: "
              "bench/results/perceptual_ordering.md). RD curves: `vq_kodak_rd.png`.",
    )
    plot_rd([{"codec": n, "lossless": False, "bpp": b, "psnr": p, "ms_ssim": 1 - 10 ** (-m / 10)}
             for n in [args.codec, *others] for b, p, m, _ in curve(rows, n)],
            RESULTS / "vq_kodak_rd.png", f"Kodak ({args.images} images): {args.codec} against context, JPEG, WebP, AVIF")
    print(f"wrote {RESULTS / 'vq_kodak.md'} and vq_kodak_rd.png")


if __name__ == "__main__":
    main()
