"""`vqlossless` on Kodak: what each stage count costs in index bits and saves in pixel bits.

    python bench/vqlossless_stages.py [--codec vqlossless] [--images 24] [--stages 1,2,4,8]
        ->  bench/results/vqlossless_stages.md

For every stage count n: real files, decoded back and compared pixel for pixel; the payload
split into the indices' bits and the pixels' (the indices' from the model's ideal bits of
the vq prior, which the range coder meets within 1 %); encode and decode seconds per image.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import neurocodec
from neurocodec import registry

from report import write_table

KODAK = Path(__file__).resolve().parent.parent.parent / "shared/data/images/kodak"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="vqlossless")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--stages", default="", help="comma-separated stage counts (default: all)")
    args = ap.parse_args()
    base = neurocodec.load_codec(args.codec)
    counts = [int(s) for s in args.stages.split(",")] if args.stages else list(range(1, base.net.vq.stages + 1))
    cls = type(base)
    weights = load_file(str(registry.codec_folder(args.codec) / registry.WEIGHTS))
    codecs = {n: cls(dict(base.config, stages=n), weights, base.weights_digest) for n in counts}
    sums = {n: np.zeros(5) for n in counts}  # bits, index bits, encode s, decode s, sub-pixels
    load, paths = os.getloadavg()[0], sorted(KODAK.glob("kodim*.png"))[: args.images]
    for path in paths:
        x = np.asarray(Image.open(path).convert("RGB"))
        t = torch.from_numpy(x.copy()).permute(2, 0, 1)[None].float() / 255
        for n, codec in codecs.items():
            start = time.perf_counter(); blob = codec.encode(x); enc = time.perf_counter() - start
            start = time.perf_counter(); y = codec.decode(blob); dec = time.perf_counter() - start
            assert np.array_equal(x, y), f"{path.name}: not lossless at {n} stages"
            with torch.no_grad():
                _, indices, _ = codec.net.vq.rvq(codec.net.vq.g_a(t), n)
                index_bits = codec.net.vq.prior_bits(indices).item()
            sums[n] += (8 * len(blob), index_bits, enc, dec, x.size)
        print(path.name, flush=True)
    rows = []
    for n, (bits, index_bits, enc, dec, sub) in sums.items():
        k = len(paths)
        rows.append(f"| {n} | {bits / sub:.4f} | {index_bits / sub:.4f} | {(bits - index_bits) / sub:.4f} "
                    f"| {enc / k:.2f} | {dec / k:.2f} |")
    how = (f"`python bench/vqlossless_stages.py --images {args.images}" + (f" --stages {args.stages}" if args.stages else "")
           + f"` with `{args.codec}` (weights "
           f"{registry.read_config(args.codec).get('weights_sha256', '')[:12]}), {len(paths)} Kodak images, real files "
           f"decoded back exactly; torch {torch.get_num_threads()} thread(s), load average {load:.1f} at the start. "
           "bpsp: bits per sub-pixel of the whole file; the indices' share from the vq prior's ideal bits.")
    path = write_table("vqlossless_stages.md", f"{args.codec}: stage count against bits (Kodak)", how,
                       ["stages", "bpsp", "indices bpsp", "pixels bpsp", "encode s", "decode s"], rows)
    print(path.read_text())


if __name__ == "__main__":
    main()
