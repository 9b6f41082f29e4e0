"""Tile borders of the lossy codec on a 4096-px image: a crop across a tile corner, decoded
with independent tiles (how files without `overlap` decode) and with overlapping analysis and
synthesis (what the codec writes now), beside the original.

    python bench/seams.py [CODEC]   ->  bench/results/seams_4096.png, bench/results/seams_4096.md

CODEC is the default lossy codec unless named (`context`, `hyperprior`: the families that tile
with overlap). The 4096x2731 image is Kodak's kodim23 enlarged (Lanczos); tiles are 1024 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

import neurocodec

OUT = Path("bench/results")
CROP = 192  # pixels on each side of the tile corner at (1024, 1024)


def independent_tiles(codec):
    """The same codec, each tile analysed and synthesized alone (the files of before)."""
    from safetensors.torch import load_file

    from neurocodec import registry

    class IndependentTiles(type(codec)):
        def params(self, x, quality):
            return {"quality": quality, "tile": self.tile}

    weights = load_file(str(registry.codec_folder(codec.name) / registry.WEIGHTS))
    return IndependentTiles(codec.config, weights, codec.weights_digest)


def border_step(img: np.ndarray, at: int = 1024) -> float:
    """Mean absolute difference across the tile border (rows and columns at `at`) relative
    to the mean difference between neighbouring pixels elsewhere."""
    a = img.astype(np.int32)
    border = (np.abs(a[:, at] - a[:, at - 1]).mean() + np.abs(a[at] - a[at - 1]).mean()) / 2
    inner = np.mean([np.abs(a[:, k] - a[:, k - 1]).mean() for k in range(100, a.shape[1] - 1, 97) if k % 1024])
    return border / inner


def main(name: str) -> None:
    src = Image.open(Path("../shared/data/images/kodak/kodim23.png")).convert("RGB")
    x = np.asarray(src.resize((4096, 2731), Image.LANCZOS))
    shipped = neurocodec.load_codec(name)
    rows, crops = [], [x]
    for label, codec in (("independent tiles", independent_tiles(shipped)), ("overlapping tiles (shipped)", shipped)):
        blob = codec.encode(x, quality=50)
        y = codec.decode(blob)
        mse = np.mean((y.astype(float) - x) ** 2)
        rows.append(f"| {label} | {8 * len(blob) / (x.shape[0] * x.shape[1]):.4f} | {10 * np.log10(255**2 / mse):.2f} | "
                    f"{border_step(y):.2f} |")
        crops.append(y)
    c = slice(1024 - CROP, 1024 + CROP)
    strip = np.concatenate([np.pad(im[c, c], ((0, 0), (0, 8), (0, 0)), constant_values=255) for im in crops], axis=1)
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).save(OUT / "seams_4096.png")
    text = [
        f"# Tile borders on a 4096-px image ({name}, quality 50)",
        "",
        f"`python bench/seams.py {name}`: weights {shipped.weights_digest.hex()[:12]}, kodim23 enlarged to 4096x2731 (Lanczos), 1024-px tiles. "
        "`seams_4096.png` shows a 384-px crop around the tile corner at (1024, 1024): original, "
        "independent tiles, overlapping tiles.",
        "",
        "| decoding | bpp | PSNR dB | step across the border / step elsewhere |",
        "|---|---:|---:|---:|",
        *rows,
        f"| original | | | {border_step(x):.2f} |",
        "",
    ]
    (OUT / "seams_4096.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    from neurocodec import registry

    main(sys.argv[1] if len(sys.argv) > 1 else registry.default_codec("image", False))
