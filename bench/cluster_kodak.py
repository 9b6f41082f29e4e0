"""Wall time of `neurocodec compress|decompress` on 48 Kodak images (the 24, each twice), without
an engine and with `--engine dask` on a local cluster of 1 and 2 workers, and the engine's
start-up overhead. Writes a Markdown table to stdout (README "Many files on a cluster").

    python bench/cluster_kodak.py [--kodak ../shared/data/images/kodak] [--codecs hyperprior,idf]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds of the command, and CPU seconds of it and all its processes (the cluster's
    workers included), which a loaded machine changes less."""
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-m", "neurocodec.cli", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args[:4])}...: {p.stderr.strip()}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - t, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kodak", default="../shared/data/images/kodak")
    ap.add_argument("--codecs", default="hyperprior,idf")
    ap.add_argument("--copies", type=int, default=2)
    a = ap.parse_args()
    modes = {"no engine": [], "dask, 1 worker": ["--engine", "dask", "--workers", "1"],
             "dask, 2 workers": ["--engine", "dask", "--workers", "2"]}
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    print("| codec | run | compress: wall s (CPU s) | decompress: wall s (CPU s) | load avg after |\n"
          "|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for p in sorted(Path(a.kodak).glob("*.png")):
            for i in range(a.copies):
                shutil.copy(p, src / f"{p.stem}_{i}.png")
        files = sorted(str(p) for p in src.iterdir())
        small = str(Path(__file__).resolve().parent.parent / "tests" / "data" / "kodim23_crop.png")
        for codec in a.codecs.split(","):
            for mode, extra in modes.items():
                enc, dec = Path(tmp) / "enc", Path(tmp) / "dec"
                shutil.rmtree(enc, ignore_errors=True)
                shutil.rmtree(dec, ignore_errors=True)
                c = timed(["compress", "-c", codec, "--output-dir", str(enc), *extra, *files])
                d = timed(["decompress", "--output-dir", str(dec), *extra, *sorted(map(str, enc.iterdir()))])
                print(f"| {codec} | {mode}, {len(files)} images | {c[0]:.1f} ({c[1]:.1f}) | {d[0]:.1f} ({d[1]:.1f}) "
                      f"| {os.getloadavg()[0]:.2f} |", flush=True)
            for mode, extra in modes.items():  # start-up: one small image
                out = Path(tmp) / "one.ncd"
                c = timed(["compress", "-f", "-c", codec, "-o", str(out), *extra, small])
                print(f"| {codec} | {mode}, one 256x192 image | {c[0]:.1f} ({c[1]:.1f}) | | {os.getloadavg()[0]:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
