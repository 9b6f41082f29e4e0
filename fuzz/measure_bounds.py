"""The measurements behind each family's bounds on what one part of a file may hold.

Every decoder refuses a part that holds more samples (pixels, or bytes of text) per byte of
its chunk than its family's `PIXELS_PER_CHUNK_BYTE` / `BYTES_PER_CHUNK_BYTE` (see
`LikelihoodCodec.samples_per_chunk_byte`), so that a small crafted file cannot make it decode
for minutes. The bounds are the most compressible inputs measured here, times a margin; the
comments at each bound quote the numbers. Run it again after training new weights:

    python fuzz/measure_bounds.py                       # images: 256x256 flat and simple images
    python fuzz/measure_bounds.py --text 2097152        # text: runs of one byte (slow: ~20 kB/s)
    python fuzz/measure_bounds.py --hyperprior-tile 1024

It prints, for each input, the payload and the samples per payload byte of its fullest part,
next to the bound its decoder applies.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import neurocodec
from neurocodec import container, limits
from neurocodec.compose.likelihood import _shape


def images(n: int) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:n, :n]
    flat = lambda v: np.full((n, n, 3), v, np.uint8)  # noqa: E731
    red = np.zeros((n, n, 3), np.uint8)
    red[..., 0] = 255
    return {
        "black": flat(0), "white": flat(255), "grey": flat(128), "red": red,
        "horizontal gradient": np.repeat(((xx * 255) // max(1, n - 1)).astype(np.uint8)[:, :, None], 3, 2),
        "checkerboard": (((xx + yy) % 2) * 255).astype(np.uint8)[:, :, None].repeat(3, 2),
    }


def texts(n: int) -> dict[str, bytes]:
    return {
        "zeros": bytes(n), "spaces": b" " * n, "abab": b"ab" * (n // 2),
        "a repeated sentence": (b"the quick brown fox jumps over the lazy dog. " * (n // 45 + 1))[:n],
    }


def report(codec, name: str, x, quality=None) -> None:
    start = time.perf_counter()
    box = container.unpack(codec.encode(x, quality))
    shape = box.header.shape
    params = codec.check_params(box.header.params)
    parts = codec.plan(tuple(shape), params)
    worst = 0.0
    for part, chunk in zip(parts, box.chunks):
        samples = sum(limits.samples(codec.modality, _shape(tuple(shape), r)) for r in part)
        worst = max(worst, samples / max(1, len(chunk)))
    print(f"{codec.name:10s} {name:22s} {'x'.join(map(str, shape)):>12s}  payload {sum(map(len, box.chunks)):>9,d} B"
          f"  {worst:10.1f} samples/B (bound {codec.samples_per_chunk_byte})  {time.perf_counter() - start:6.1f} s",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="side of the test images")
    ap.add_argument("--codecs", default="hyperprior,idf,bitsback,pixelcnn")
    ap.add_argument("--text", type=int, default=0, help="also measure texts of this many bytes")
    ap.add_argument("--hyperprior-tile", type=int, default=0, help="also measure flat images of one hyperprior tile of this side")
    args = ap.parse_args()
    for name in filter(None, args.codecs.split(",")):
        codec = neurocodec.load_codec(name)
        for what, x in images(args.size).items():
            report(codec, what, x, None if codec.lossless else 1)
    if args.hyperprior_tile:
        codec = neurocodec.load_codec("hyperprior")
        codec.tile = args.hyperprior_tile
        for what in ("grey", "white"):
            report(codec, what, images(args.hyperprior_tile)[what], 1)
    if args.text:
        codec = neurocodec.load_codec("text")
        for what, x in texts(args.text).items():
            report(codec, what, x)


if __name__ == "__main__":
    main()
