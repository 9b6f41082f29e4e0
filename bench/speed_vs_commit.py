"""Encode and decode speed of each codec here against the same codec at another commit: did a
change make a codec slower?

    python bench/speed_vs_commit.py REV [--rounds 3] [--out speed_vs_REV.md]

REV's tree is checked out into a temporary git worktree and imported from there (its own
`codecs/` weights). Each round times both trees in fresh one-thread processes, one after the
other, on the same inputs: kodim01 (768x512; pixelcnn, the slowest, a 256x256 crop of it), the
lossy codecs at quality 50, and 50 kB of an evaluation book for text. The table gives the
fastest round of each (the least disturbed by other work on the machine) and checks that both
trees decode what they encoded (lossless exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from report import write_table

ROOT = Path(__file__).resolve().parent.parent
KODIM = ROOT.parent / "shared/data/images/kodak/kodim01.png"
BOOK = ROOT.parent / "shared/data/text/eval/Walden_and_On_The_Duty_Of_Civil_Disobedience.txt"

# Run in a fresh process with one tree first on sys.path: times one codec's compress and
# decompress through the API both trees have (`neurocodec.compress(obj, codec, quality)`).
PROBE = r"""
import json, sys, time
import numpy as np
from PIL import Image
import torch
torch.set_num_threads(1)
import neurocodec
codec, kind, src, crop = sys.argv[1:5]
if kind == "text":
    obj = open(src, "rb").read()[:50_000]
else:
    obj = np.asarray(Image.open(src).convert("RGB"))
    if int(crop):
        obj = np.ascontiguousarray(obj[:int(crop), :int(crop)])
quality = 50 if kind == "lossy" else None
neurocodec.compress(obj[:8, :8] if kind != "text" else obj[:64], codec=codec, quality=quality)  # load the weights
t = time.perf_counter(); blob = neurocodec.compress(obj, codec=codec, quality=quality); enc = time.perf_counter() - t
t = time.perf_counter(); back = neurocodec.decompress(blob); dec = time.perf_counter() - t
exact = bool(back == obj) if kind == "text" else bool(np.array_equal(back, obj))
print(json.dumps({"enc": enc, "dec": dec, "bytes": len(blob), "exact": exact, "file": neurocodec.__file__}))
"""

CODECS = {"pixelcnn": ("lossless", 256), "idf": ("lossless", 0), "bitsback": ("lossless", 0),
          "hyperprior": ("lossy", 0), "context": ("lossy", 0), "text": ("text", 0)}  # kind, crop (0: none)


def probe(tree: Path, codec: str) -> dict | None:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    kind, crop = CODECS[codec]
    src = BOOK if kind == "text" else KODIM
    p = subprocess.run([sys.executable, "-c", PROBE, codec, kind, str(src), str(crop)], env=env, capture_output=True,
                       text=True, cwd=tree)
    if p.returncode != 0:
        return None  # e.g. the codec does not exist at that commit
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve().is_relative_to(tree.resolve()), out["file"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--codecs", default=",".join(CODECS))
    ap.add_argument("--out", help="results file name (default speed_vs_REV.md)")
    args = ap.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    rows, load = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        old = Path(d) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for codec in args.codecs.split(","):
                kind = CODECS[codec][0]
                runs: dict[str, list[dict]] = {"old": [], "new": []}
                for _ in range(args.rounds):
                    for side, tree in (("old", old), ("new", ROOT)):
                        r = probe(tree, codec)
                        if r is not None:
                            runs[side].append(r)
                if not runs["old"] or not runs["new"]:
                    print(f"{codec}: not at both commits, skipped", flush=True)
                    continue
                best = {s: (min(r["enc"] for r in rs), min(r["dec"] for r in rs)) for s, rs in runs.items()}
                exact = all(r["exact"] for rs in runs.values() for r in rs) if kind != "lossy" else None
                (oe, od), (ne, nd) = best["old"], best["new"]
                rows.append(f"| {codec} | {kind} | {oe:.2f} | {ne:.2f} | {ne / oe:.2f} | {od:.2f} | {nd:.2f} | "
                            f"{nd / od:.2f} | {runs['old'][0]['bytes']} | {runs['new'][0]['bytes']} | "
                            f"{'-' if exact is None else ('yes' if exact else 'NO')} |")
                print(rows[-1], flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    write_table(
        args.out or f"speed_vs_{rev}.md", f"Speed against commit {rev}",
        f"`python bench/speed_vs_commit.py {args.rev} --rounds {args.rounds}`: seconds, the fastest of "
        f"{args.rounds} rounds, each a fresh one-thread process per tree, run in turn; 2-core CPU, load average "
        f"{load:.1f} at the start. Inputs: kodim01 (pixelcnn: its top-left 256x256), lossy at quality 50, "
        "50 kB of Walden (text). Each tree uses its own weights, so sizes differ where the weights changed.",
        ["<codec", "<kind", f"encode {rev}", "encode now", "ratio", f"decode {rev}", "decode now", "ratio",
         f"bytes {rev}", "bytes now", "exact"],
        rows,
    )


if __name__ == "__main__":
    main()
