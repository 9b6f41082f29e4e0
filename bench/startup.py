"""Start-up of the command line (issue 16 item 10): wall seconds of a fresh process that
compresses, decompresses or describes a 1x1 PNG, median of `--runs` runs per codec.

    python bench/startup.py [--runs 5]   ->  bench/results/startup.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from report import write_table

CLI = [sys.executable, "-m", "neurocodec.cli"]


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def median(cmd: list[str], runs: int) -> float:
    return statistics.median(wall(cmd) for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--codecs", default="context,hyperprior,vq,pixelcnn,idf,bitsback,vqlossless")
    args = ap.parse_args()
    rows, load = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        src, blob, back = Path(d) / "one.png", Path(d) / "one.ncd", Path(d) / "back.png"
        Image.new("RGB", (1, 1), (120, 30, 200)).save(src)
        torch_import = median([sys.executable, "-c", "import torch"], args.runs)
        for codec in args.codecs.split(","):
            enc = median(CLI + ["compress", "-f", "-c", codec, "-o", str(blob), str(src)], args.runs)
            dec = median(CLI + ["decompress", "-f", "-o", str(back), str(blob)], args.runs)
            info = median(CLI + ["info", str(blob)], args.runs)
            rows.append((codec, enc, dec, info))
            print(f"{codec}: compress {rows[-1][1]:.2f} s, decompress {rows[-1][2]:.2f} s, info {rows[-1][3]:.2f} s", flush=True)
    write_table(
        "startup.md", "Start-up: a 1x1 PNG through a fresh `neurocodec` process",
        f"`python bench/startup.py --runs {args.runs}`: wall seconds, median of {args.runs} runs; "
        f"`python -c 'import torch'` alone takes {torch_import:.2f} s on this machine "
        f"(load average {load:.1f} when it started: other work shares the cores).",
        ["<codec", "compress s", "decompress s", "info s"],
        (f"| {c} | {e:.2f} | {d:.2f} | {i:.2f} |" for c, e, d, i in rows),
    )


if __name__ == "__main__":
    main()
