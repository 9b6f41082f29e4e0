"""Prepare the project root for a lent GPU machine (see docs/gpu.md).

- `.whl/`: the wheels the GPU machine lacks (compressai, constriction, pytorch-msssim from
  ../shared/gpu/wheels, and click from the package registry);
- `.gpudata/shard-N/`: the training photos (images/train and images/extra, never Kodak) in
  shards of about 25 MiB, each small enough to carry with the working tree;
- `.gpudata/kodak/`: the Kodak images, for the GPU-encode / CPU-decode check
  (scripts/gpu_determinism.py), never for training;
- `.gpudata/text/train.txt.xz`: the text model's training set (26 MiB), and
  `.gpudata/text/part-N.txt.xz`: the same text in parts of about 9 MiB, for a command that
  trains several families at once (scripts/gpu_together.sh) and must carry less.

Both folders are ignored by git.

    python scripts/gpu_prepare.py [--shard-mib 25]
"""

from __future__ import annotations

import argparse
import lzma
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SOURCES = [SHARED / "data" / "images" / "train", SHARED / "data" / "images" / "extra"]
SUFFIXES = {".png", ".webp"}


def wheels(dest: Path) -> None:
    dest.mkdir(exist_ok=True)
    for whl in (SHARED / "gpu" / "wheels").glob("*.whl"):
        shutil.copy2(whl, dest / whl.name)
    if not list(dest.glob("click-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(dest),
                        "click"], check=True)


def shards(dest: Path, mib: float) -> list[Path]:
    files = sorted(p for folder in SOURCES for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    random.Random(0).shuffle(files)  # every shard a mix of both sets
    if dest.exists():
        shutil.rmtree(dest)
    out, size, k = [], 0, 0
    for f in files:
        if not out or size + f.stat().st_size > mib * 2**20:
            out.append(dest / f"shard-{k}")
            out[-1].mkdir(parents=True)
            size, k = 0, k + 1
        shutil.copy2(f, out[-1] / f.name)
        size += f.stat().st_size
    return out


def text_parts(source: Path, dest: Path, parts: int) -> list[Path]:
    """`source` (.xz) cut at line ends into `parts` pieces of about equal length, each .xz."""
    text = lzma.decompress(source.read_bytes())
    out, start = [], 0
    for k in range(parts):
        end = len(text) if k == parts - 1 else text.find(b"\n", (k + 1) * len(text) // parts) + 1
        path = dest / f"part-{k}.txt.xz"
        path.write_bytes(lzma.compress(text[start:end], preset=6))
        out.append(path)
        start = end
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shard-mib", type=float, default=25)
    ap.add_argument("--text-parts", type=int, default=3)
    args = ap.parse_args()
    wheels(ROOT / ".whl")
    made = shards(ROOT / ".gpudata", args.shard_mib)
    kodak = ROOT / ".gpudata" / "kodak"  # for scripts/gpu_determinism.py: 15 MiB, never trained on
    shutil.copytree(SHARED / "data" / "images" / "kodak", kodak, dirs_exist_ok=True)
    text = ROOT / ".gpudata" / "text"  # the text model's training set (26 MiB), carried on its own
    text.mkdir(exist_ok=True)
    shutil.copy2(SHARED / "data" / "text" / "train.txt.xz", text / "train.txt.xz")
    for p in text_parts(text / "train.txt.xz", text, args.text_parts):
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size / 2**20:.1f} MiB")
    for s in made:
        n = len(list(s.iterdir()))
        print(f"{s.relative_to(ROOT)}: {n} images, {sum(p.stat().st_size for p in s.iterdir()) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
