"""Copy each shipped lossless codec's Kodak means from a benchmark CSV into its config.json.

`neurocodec compress --lossless` picks the installed codec with the lowest `kodak.bpsp`
(neurocodec.registry.BEST_BY), so that figure must be the one the benchmark measured:

    neurocodec bench ../shared/data/images/kodak --lossless --jobs 2
    python bench/record_kodak.py bench/results/kodak_lossless.csv

Only the config's `kodak` entry changes; the weights and their digest do not.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

from neurocodec import registry


def main(path: str) -> None:
    rows = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[r["codec"]].append(r)
    for name in registry.available_codecs():
        if name not in rows:
            continue
        rs = rows[name]
        if len(rs) != 24 or not all(r["exact"] == "True" for r in rs):
            raise SystemExit(f"{name}: need 24 exact Kodak rows, found {len(rs)}")
        mean = lambda key: round(sum(float(r[key]) for r in rs) / len(rs), 4)  # noqa: E731
        cfg_path = registry.codec_folder(name) / registry.CONFIG
        config = json.loads(cfg_path.read_text())
        config["kodak"] = dict(config.get("kodak", {}), bpsp=mean("bpsp"), encode_s=mean("encode_s"), decode_s=mean("decode_s"))
        cfg_path.write_text(json.dumps(config, indent=2) + "\n")
        print(f"{name}: {config['kodak']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/kodak_lossless.csv")
