"""Text speed and memory against input size (issue 16 item 11): `neurocodec compress` and
`decompress` of the evaluation books cut or repeated to several sizes, each in a fresh process:
wall seconds, kB/s and peak resident memory (GNU time's maximum RSS).

    python bench/text_speed.py [--sizes 0.5,2.2,5]   ->  bench/results/text_speed.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_table

EVAL = Path("../shared/data/text/eval")


def run(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of `neurocodec ARGS` in a fresh process."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "neurocodec.cli", *args],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"neurocodec {' '.join(args)} failed: {p.stderr.strip()}")
    return time.perf_counter() - t, int(p.stderr.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.5,2.2,5", help="input sizes in MB (10^6 bytes)")
    args = ap.parse_args()
    books = b"".join(p.read_bytes() for p in sorted(EVAL.glob("*.txt")))
    rows, load = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        for mb in map(float, args.sizes.split(",")):
            n = int(mb * 1e6)
            src, blob, back = Path(d) / "in.txt", Path(d) / "in.txt.ncd", Path(d) / "back.txt"
            src.write_bytes((books * (n // len(books) + 1))[:n])
            enc, enc_rss = run(["compress", "-f", "-o", str(blob), str(src)])
            dec, dec_rss = run(["decompress", "-f", "-o", str(back), str(blob)])
            assert back.read_bytes() == src.read_bytes()
            bpb = 8 * blob.stat().st_size / n
            rows.append(f"| {mb:g} | {bpb:.3f} | {n / enc / 1e3:.1f} | {n / dec / 1e3:.1f} | {enc_rss >> 10} | {dec_rss >> 10} |")
            print(rows[-1], flush=True)
    write_table(
        "text_speed.md", "Text: speed and memory against size",
        f"`python bench/text_speed.py --sizes {args.sizes}`: the six evaluation books, cut or repeated to each "
        "size, through `neurocodec compress` and `decompress` (fresh processes, start-up included), "
        f"2-core CPU, load average {load:.1f} at the start.",
        ["MB", "bits per byte", "encode kB/s", "decode kB/s", "encode peak RSS MiB", "decode peak RSS MiB"],
        rows,
    )


if __name__ == "__main__":
    main()
