"""Copy each shipped codec's measured Kodak figures from the benchmark CSVs into its config.json.

`neurocodec compress` picks, among the installed codecs of a kind, the one with the best
measured figure (neurocodec.registry.BEST_BY): the lowest `kodak.bpsp` for lossless images,
the lowest `kodak.bd_rate_jpeg` (PSNR BD-rate against JPEG in the same run) for lossy ones. So
those figures must be the ones the benchmark measured:

    neurocodec bench ../shared/data/images/kodak                      # lossy
    neurocodec bench ../shared/data/images/kodak --lossless --jobs 2  # lossless
    python bench/record_kodak.py

Only the config's `kodak` entry changes; the weights and their digest do not.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict

from neurocodec import registry
from neurocodec.bench import images


def _rows(path: str) -> dict[str, list[dict]]:
    rows = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[r["codec"]].append(r)
    return rows


def _update(name: str, figures: dict) -> None:
    path = registry.codec_folder(name) / registry.CONFIG
    config = json.loads(path.read_text())
    config["kodak"] = dict(config.get("kodak", {}), **figures)
    path.write_text(json.dumps(config, indent=2) + "\n")
    print(f"{name}: {config['kodak']}")


def lossless(path: str) -> None:
    for name, rs in _rows(path).items():
        if name not in registry.available_codecs():
            continue
        if len(rs) != 24 or not all(r["exact"] == "True" for r in rs):
            raise SystemExit(f"{name}: need 24 exact Kodak rows, found {len(rs)}")
        mean = lambda key: round(sum(float(r[key]) for r in rs) / len(rs), 4)  # noqa: E731
        _update(name, {"bpsp": mean("bpsp"), "encode_s": mean("encode_s"), "decode_s": mean("decode_s")})


def lossy(path: str) -> None:
    def parsed(r: dict) -> dict:
        numbers = {k: float(r[k]) if r[k] not in ("", None) else None for k in images._MEANS}
        return dict(r, **numbers, quality=int(r["quality"]), lossless=r["lossless"] == "True", exact=r["exact"] == "True")

    rows = [parsed(r) for rs in _rows(path).values() for r in rs]
    rates = images.bd_rates(images.summarize(rows), "jpeg")
    for name, rate in rates.items():
        if name in registry.available_codecs():
            rs = [r for r in rows if r["codec"] == name]
            mean = lambda key: round(sum(r[key] for r in rs) / len(rs), 4)  # noqa: E731
            _update(name, {"bd_rate_jpeg": round(rate, 2), "encode_s": mean("encode_s"), "decode_s": mean("decode_s")})


if __name__ == "__main__":
    lossless(sys.argv[1] if len(sys.argv) > 1 else "bench/results/kodak_lossless.csv")
    lossy(sys.argv[2] if len(sys.argv) > 2 else "bench/results/kodak_lossy.csv")
