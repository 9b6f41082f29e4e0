"""Encoder-side search: BD-rate gain against encode seconds for each effort level.

    python bench/effort.py [--codec NAME] [--images 6] [--crop 384] [--efforts 1,2,3] [--jobs 2]

Each Kodak image (center crop) is coded at four qualities with every effort level of the
codec; the decoder is the same for all. BD-rates (PSNR) are against effort 0 and against
Pillow JPEG 4:2:0 on the same crops, in the same run. `--jobs` codes that many crops at a time,
each process on one torch thread (the seconds are per crop either way). Writes
bench/results/effort_<codec>.md.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import neurocodec
from neurocodec.bench.baselines import get_baseline
from neurocodec.bench.metrics import bd_rate_points

KODAK = Path("../shared/data/images/kodak")
QUALITIES = (12, 38, 62, 88)

_warm: set[str] = set()  # the codecs a worker has run once


def _code(name: str, x: np.ndarray, quality: int, effort: int) -> tuple[int, float, float]:
    """(bytes, MSE, encode seconds) of one crop coded at `effort` and decoded: a real file."""
    codec = neurocodec.load_codec(name)
    if name not in _warm and len(codec.efforts) > 1:  # imports and first-call costs out of the timings
        codec.encode(np.full((16, 16, 3), 128, np.uint8), quality=50, effort=codec.efforts[1])
        _warm.add(name)
    t = time.perf_counter()
    blob = codec.encode(x, quality=quality, effort=effort)
    spent = time.perf_counter() - t
    return len(blob), _mse(codec.decode(blob), x), spent


def _mse(decoded: np.ndarray, x: np.ndarray) -> float:
    return float(np.mean((decoded.astype(float) - x) ** 2))


def _worker() -> None:
    torch.set_num_threads(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default=None, help="default: the default lossy codec")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--crop", type=int, default=384)
    ap.add_argument("--efforts", default=None, help="comma-separated effort levels (default: all; 0 is always run)")
    ap.add_argument("--jobs", type=int, default=1, help="crops coded at a time, one process and torch thread each")
    args = ap.parse_args()
    from neurocodec import registry

    name = args.codec or registry.default_codec("image", False)
    codec = neurocodec.load_codec(name)
    paths = sorted(KODAK.glob("kodim*.png"))[:: max(1, 24 // args.images)][: args.images]
    load = os.getloadavg()[0]

    crops = []
    for p in paths:
        x = np.asarray(Image.open(p).convert("RGB"))
        r, c = (x.shape[0] - args.crop) // 2, (x.shape[1] - args.crop) // 2
        crops.append(np.ascontiguousarray(x[r : r + args.crop, c : c + args.crop]))

    def point(coded: list[tuple[int, float]]) -> tuple[float, float]:
        """(mean bpp, PSNR of the mean MSE) of the crops coded as (bytes, MSE)."""
        bpp = float(np.mean([8 * n / (args.crop * args.crop) for n, _ in coded]))
        return bpp, float(10 * np.log10(255**2 / np.mean([m for _, m in coded])))

    jpeg = get_baseline("jpeg")

    def jpeg_coded(x: np.ndarray, q: int) -> tuple[int, float]:
        blob = jpeg.encode(x, q)
        return len(blob), _mse(jpeg.decode(blob), x)

    anchor = [point([jpeg_coded(x, q) for x in crops]) for q in jpeg.bench_qualities]
    curves: dict[int, list[tuple[float, float]]] = {}
    seconds: dict[int, float] = {}
    efforts = codec.efforts if args.efforts is None else sorted({0, *map(int, args.efforts.split(","))})
    # the longest searches first, so that the processes finish together
    tasks = sorted(((e, q, i) for e in efforts for q in QUALITIES for i in range(len(crops))), key=lambda t: -t[0])
    with ProcessPoolExecutor(args.jobs, initializer=_worker) as pool:
        futures = {t: pool.submit(_code, name, crops[t[2]], t[1], t[0]) for t in tasks}
        results = {t: f.result() for t, f in futures.items()}
    for effort in efforts:
        points = []
        for q in QUALITIES:
            points.append(point([results[effort, q, i][:2] for i in range(len(crops))]))
            print(name, "effort", effort, "q", q, points[-1], flush=True)
        curves[effort] = points
        seconds[effort] = float(np.mean([results[effort, q, i][2] for q in QUALITIES for i in range(len(crops))]))
    px = args.crop * args.crop / 1e6
    rows = [f"| {e} | {seconds[e]:.2f} | {seconds[e] / px:.1f} | "
            f"{0.0 if e == 0 else bd_rate_points(curves[0], curves[e]):+.1f} % | {bd_rate_points(anchor, curves[e]):+.1f} % |" for e in efforts]
    chosen = ("" if args.efforts is None else f" --efforts {args.efforts}") + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
    text = [f"# {name}: encoder-side search (effort)", "",
            f"`python bench/effort.py --codec {name} --images {args.images} --crop {args.crop}{chosen}`: "
            f"weights {codec.weights_digest.hex()[:12]}, {len(paths)} Kodak images ({', '.join(p.stem for p in paths)}), "
            f"{args.crop}x{args.crop} center crops, qualities {', '.join(map(str, QUALITIES))}; {args.jobs} process(es), "
            f"2-core CPU, torch on one thread each, load average {load:.1f} at the start "
            "(other work shared the machine: the seconds are upper bounds). The decoder is the same "
            "at every effort.", "",
            "| effort | encode s per crop | s per megapixel | BD-rate vs effort 0 (PSNR) | BD-rate vs JPEG (PSNR) |",
            "|---:|---:|---:|---:|---:|", *rows, ""]
    out = Path("bench/results") / f"effort_{name}.md"
    out.write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
