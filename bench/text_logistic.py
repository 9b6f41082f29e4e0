"""The text codec with and without its bitwise logistic mixer (`BitMixer`, header "logistic"):
real files of the six evaluation books, each coded both ways by the shipped weights in this
process (torch on all cores) and decoded back: bits per byte and decode kB/s.

    python bench/text_logistic.py [FOLDER]   ->  bench/results/text_logistic.md
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import neurocodec  # noqa: E402
import torch  # noqa: E402
from neurocodec.families.text.codec import TextCodec  # noqa: E402

from report import write_table  # noqa: E402

EVAL = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/text/eval")


def measure(codec, data: bytes) -> tuple[int, float]:
    """(file bytes, decode s) of a real round trip."""
    blob = codec.encode(data)
    t = time.perf_counter()
    if codec.decode(blob) != data:
        raise SystemExit("round trip failed")
    return len(blob), time.perf_counter() - t


def main() -> None:
    shipped = neurocodec.load_codec("text")
    linear = TextCodec(shipped.config | {"logistic": False}, shipped._weights, shipped.weights_digest)
    rows, totals, start = [], {"linear": [0, 0.0], "logistic": [0, 0.0]}, time.time()
    size, books = 0, sorted(EVAL.glob("*.txt"))
    if not books:
        raise SystemExit(f"no .txt files in {EVAL} (run from the project root, or name a folder)")
    for book in books:
        data = book.read_bytes()
        size += len(data)
        cells = []
        for key, codec in (("linear", linear), ("logistic", shipped)):
            n, dec = measure(codec, data)
            totals[key] = [a + b for a, b in zip(totals[key], (n, dec))]
            cells.append((n, dec))
        (n0, d0), (n1, d1) = cells
        rows.append(f"| {book.stem.replace('_', ' ')[:40]} | {len(data) / 1000:.0f} | {8 * n0 / len(data):.4f} | "
                    f"{8 * n1 / len(data):.4f} | {100 * (n1 / n0 - 1):+.2f} % | {len(data) / 1000 / d0:.1f} | "
                    f"{len(data) / 1000 / d1:.1f} |")
        print(rows[-1], flush=True)
    (n0, d0), (n1, d1) = totals["linear"], totals["logistic"]
    rows.append(f"| **all six** | {size / 1000:.0f} | {8 * n0 / size:.4f} | {8 * n1 / size:.4f} | {100 * (n1 / n0 - 1):+.2f} % | "
                f"{size / 1000 / d0:.1f} | {size / 1000 / d1:.1f} |")
    load = os.getloadavg()[0]
    write_table(
        "text_logistic.md",
        "Text: the bitwise logistic mixer, on and off",
        f"`python bench/text_logistic.py`: the six evaluation books, each coded by the shipped weights "
        f"({shipped.weights_digest.hex()[:12]}) with the linear mix alone and with `BitMixer` after it (the "
        f"default from 128 KiB on), real files, decoded back exactly; torch on {torch.get_num_threads()} threads, load average "
        f"{load:.1f} at the end. {time.time() - start:.0f} s.",
        ["<book", "kB", "bits/byte linear", "bits/byte logistic", "file", "decode kB/s linear", "decode kB/s logistic"],
        rows,
    )


if __name__ == "__main__":
    main()
