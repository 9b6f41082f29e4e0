"""Encode and decode seconds of one codec on one and on two torch threads.

    python bench/threads.py [--codec vqlossless] [--images kodim01,kodim23]  ->  bench/results/threads_CODEC.md

The benchmark tables run one torch thread a process (two images at a time); a user coding one
picture gets all the cores, which codecs of a few large passes use (`part_threads`). Each
image is encoded and decoded twice per thread count, the faster of the two kept, and every
decode compared with the original (lossy codecs at quality 50). Run it on an idle machine:
the load average at the start is in the table's header.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import neurocodec  # first: it sets GOMP_SPINCOUNT before torch is loaded

import numpy as np
import torch
from PIL import Image

from report import write_table

KODAK = Path(__file__).resolve().parent.parent.parent / "shared/data/images/kodak"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="vqlossless")
    ap.add_argument("--images", default="kodim01,kodim23")
    args = ap.parse_args()
    codec = neurocodec.load_codec(args.codec)
    load = os.getloadavg()[0]
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name in args.images.split(","):
            x = np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB"))
            enc, dec = [], []
            for _ in range(2):
                t = time.perf_counter(); blob = codec.encode(x, quality=None if codec.lossless else 50); enc.append(time.perf_counter() - t)
                t = time.perf_counter(); y = codec.decode(blob); dec.append(time.perf_counter() - t)
            if codec.lossless and not np.array_equal(x, y):
                raise SystemExit(f"{args.codec} did not decode {name} exactly")
            mp = x.shape[0] * x.shape[1] / 1e6
            rows.append(f"| {threads} | {name} | {8 * len(blob) / x.size:.4f} | {min(enc):.2f} | {min(dec):.2f} | {mp / min(dec):.2f} |")
            print(rows[-1], flush=True)
    path = write_table(
        f"threads_{args.codec}.md", f"{args.codec}: one and two torch threads",
        f"`python bench/threads.py --codec {args.codec} --images {args.images}`: the faster of two encodes and "
        f"decodes of each Kodak image, 2-core CPU, load average {load:.1f} at the start.",
        ["threads", "<image", "bits per sub-pixel", "encode s", "decode s", "decode MP/s"], rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
