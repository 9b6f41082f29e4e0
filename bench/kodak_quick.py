"""A shorter Kodak lossy run, for when the full `neurocodec bench` (9 qualities, MS-SSIM and
four baselines, about 1,300 codings) does not fit: the shipped lossy codecs at five qualities
and Pillow JPEG 4:2:0 at its usual nine, all 24 images, PSNR BD-rates against JPEG from real
files in one process.

    python bench/kodak_quick.py [CODEC ...]   ->  bench/results/kodak_lossy_quick.md / .csv
    python bench/kodak_quick.py --print-only CODEC CANDIDATE   (writes nothing: a candidate's check)

With two codecs or more it also gives each one's BD-rate against the first, over the rates
both reach.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import neurocodec
from neurocodec.bench.metrics import bd_rate_points, psnr

KODAK = Path("../shared/data/images/kodak")
QUALITIES = (1, 25, 50, 75, 100)
JPEG = (5, 10, 20, 30, 50, 70, 80, 90, 95)


def main(names: list[str], write: bool = True) -> None:
    paths = sorted(KODAK.glob("kodim*.png"))
    codecs = {n: neurocodec.load_codec(n) for n in names}
    rows = []
    for p in paths:
        x = np.asarray(Image.open(p).convert("RGB"))
        px = x.shape[0] * x.shape[1]
        for n, c in codecs.items():
            for q in QUALITIES:
                t = time.perf_counter(); blob = c.encode(x, quality=q); te = time.perf_counter() - t
                t = time.perf_counter(); y = c.decode(blob); td = time.perf_counter() - t
                rows.append((p.name, n, q, 8 * len(blob) / px, psnr(x, y), te, td))
        for q in JPEG:
            blob, y = _jpeg(x, q)
            rows.append((p.name, "jpeg", q, 8 * len(blob) / px, psnr(x, y), 0.0, 0.0))
        print(p.name, flush=True)
    lines = ["image,codec,quality,bpp,psnr,encode_s,decode_s", *(",".join(map(str, r)) for r in rows)]
    if write:
        Path("bench/results/kodak_lossy_quick.csv").write_text("\n".join(lines) + "\n")
    curve = lambda n, qs: [(np.mean([r[3] for r in rows if r[1] == n and r[2] == q]),  # noqa: E731
                            np.mean([r[4] for r in rows if r[1] == n and r[2] == q])) for q in qs]
    anchor = curve("jpeg", JPEG)
    out = ["# Kodak, lossy, quick run", "",
           f"`python bench/kodak_quick.py {' '.join(names)}`: 24 images, real files, one process on the 2-core CPU "
           "(shared with other work: times are upper bounds). Qualities 1, 25, 50, 75, 100; JPEG (Pillow, 4:2:0) at "
           "5-95. BD-rate: PSNR, against JPEG in this run.", "",
           "| codec | quality | bpp | PSNR dB | encode s | decode s |", "|---|---:|---:|---:|---:|---:|"]
    for n in names:
        for q in QUALITIES:
            rs = [r for r in rows if r[1] == n and r[2] == q]
            out.append(f"| {n} | {q} | {np.mean([r[3] for r in rs]):.4f} | {np.mean([r[4] for r in rs]):.2f} | "
                       f"{np.mean([r[5] for r in rs]):.3f} | {np.mean([r[6] for r in rs]):.3f} |")
    out += ["", "| codec | BD-rate vs JPEG |", "|---|---:|"]
    for n in names:
        out.append(f"| {n} | {bd_rate_points(anchor, curve(n, QUALITIES)):+.1f} % |")
    if len(names) > 1:
        first = curve(names[0], QUALITIES)
        out += ["", f"| codec | BD-rate vs {names[0]} |", "|---|---:|"]
        for n in names[1:]:
            out.append(f"| {n} | {bd_rate_points(first, curve(n, QUALITIES)):+.1f} % |")
    if write:
        Path("bench/results/kodak_lossy_quick.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))


def _jpeg(x: np.ndarray, q: int):
    """Pillow JPEG with 4:2:0 chroma, as the full benchmark's baseline."""
    import io

    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=q, subsampling=2)
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--print-only"]
    main(args or ["context", "hyperprior"], write="--print-only" not in sys.argv[1:])
