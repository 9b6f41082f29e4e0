"""Net code length of `bitsback` files against the model's negative ELBO, per Kodak image.

Bits-back coding should cost the negative ELBO plus the initial bits, paid once per file. The
encoder sums -log2 p(x|z1) p(z1|z2) p(z2) + log2 q(z1|x) q(z2|z1) of the distributions it codes
with, at the latents its ANS pops drew (`codec.measure`); this compares that
with the size of the real .ncd file and writes `bench/results/bitsback_elbo.md`.

    python bench/bitsback_elbo.py [IMAGES...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import neurocodec
from neurocodec.bench.images import _markdown, load_image, machine_line

KODAK = Path("../shared/data/images/kodak")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*", default=[str(p) for p in sorted(KODAK.glob("kodim*.png"))])
    ap.add_argument("--out", default="bench/results/bitsback_elbo.md")
    args = ap.parse_args()
    codec = neurocodec.load_codec("bitsback")
    rows, file_bits, elbo_bits, subpixels = [], 0.0, 0.0, 0
    for path in args.images:
        img = load_image(path)
        blob, elbo = codec.measure(img)
        assert np.array_equal(codec.decode(blob), img)
        bits = 8 * len(blob)
        rows.append([Path(path).name, f"{bits / img.size:.4f}", f"{elbo / img.size:.4f}", f"{100 * (bits / elbo - 1):+.2f}%"])
        file_bits, elbo_bits, subpixels = file_bits + bits, elbo_bits + elbo, subpixels + img.size
        print(*rows[-1], flush=True)
    rows.append(["**all**", f"**{file_bits / subpixels:.4f}**", f"**{elbo_bits / subpixels:.4f}**",
                 f"**{100 * (file_bits / elbo_bits - 1):+.2f}%**"])
    text = [
        "# bitsback: file size against the negative ELBO",
        "",
        f"{len(args.images)} images · {machine_line()} · `python bench/bitsback_elbo.py`",
        "",
        _markdown(["image", "file bpsp", "-ELBO bpsp", "file vs -ELBO"], rows),
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
