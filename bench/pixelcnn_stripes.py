"""Stripe height against bits and decode time for the `pixelcnn` codec.

The codec codes an image as stripes of `stripe` rows, each its own image (its first rows see
no context above), all decoded in lockstep along one wavefront. Taller stripes lose fewer
bits at their borders; the number of wavefront steps, W + (radius + 1) * (stripe - 1), grows
with the stripe. This codes each image with each stripe height (real encode and decode, sizes
of the real .ncd bytes, decoded images compared with the originals) and writes
`bench/results/pixelcnn_stripes.md`.

    python bench/pixelcnn_stripes.py [IMAGES...] [--stripes 16,32,64,128,512]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import neurocodec
from neurocodec.bench.images import _markdown, load_image, machine_line

KODAK = Path("../shared/data/images/kodak")
DEFAULT_IMAGES = [KODAK / f"kodim{i:02d}.png" for i in (1, 7, 15, 23)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*", default=[str(p) for p in DEFAULT_IMAGES])
    ap.add_argument("--stripes", default="16,32,64,128,512")
    ap.add_argument("--out", default="bench/results/pixelcnn_stripes.md")
    args = ap.parse_args()
    codec = neurocodec.load_codec("pixelcnn")
    shipped = codec.stripe
    images = [load_image(p) for p in args.images]
    rows = []
    for stripe in (int(s) for s in args.stripes.split(",")):
        codec.stripe = stripe
        bits = pixels = dec_s = 0.0
        for img in images:
            blob = codec.encode(img)
            t = time.perf_counter()
            out = codec.decode(blob)
            dec_s += time.perf_counter() - t
            assert np.array_equal(out, img)
            bits += 8 * len(blob)
            pixels += img.size
        rows.append([str(stripe), f"{bits / pixels:.4f}", f"{dec_s / len(images):.1f}"])
        print(*rows[-1], flush=True)
    codec.stripe = shipped
    names = ", ".join(Path(p).name for p in args.images)
    text = [
        "# pixelcnn: stripe height against bits and decode time",
        "",
        f"{names} · {machine_line()} · `python bench/pixelcnn_stripes.py`",
        "",
        _markdown(["stripe rows", "bpsp", "decode s per image"], rows),
        "",
        f"The shipped codec uses {shipped}-row stripes.",
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
