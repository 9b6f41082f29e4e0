"""Chunk length against bits per byte and speed for the `text` codec.

Each chunk starts from a fresh LSTM state, so longer chunks cost fewer bits; chunks decode in
lockstep, so more (shorter) chunks of one input decode faster. This codes one file with the
chunk length forced to each value (real encode and decode, sizes of the real .ncd bytes) and
writes `bench/results/text_chunks.md`.

    python bench/text_chunks.py [FILE] [--lengths 1024,2048,4096,8192,16384]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import neurocodec
from neurocodec.bench.images import _markdown, machine_line
from neurocodec.families.text.codec import TextCodec

DEFAULT_FILE = Path("../shared/data/text/eval/Walden_and_On_The_Duty_Of_Civil_Disobedience.txt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT_FILE))
    ap.add_argument("--lengths", default="1024,2048,4096,8192,16384")
    ap.add_argument("--out", default="bench/results/text_chunks.md")
    args = ap.parse_args()
    data = Path(args.file).read_bytes()
    shipped = neurocodec.load_codec("text")
    rows = []
    for length in (int(x) for x in args.lengths.split(",")):
        config = {"name": shipped.name, "chunk": length, "streams": 1, "group": 1 << 20, "context": shipped.context}
        codec = TextCodec(config, shipped._weights, shipped.weights_digest)
        t0 = time.perf_counter()
        blob = codec.encode(data)
        t1 = time.perf_counter()
        assert codec.decode(blob) == data
        t2 = time.perf_counter()
        chunks = -(-len(data) // length)
        rows.append([str(length), str(chunks), f"{8 * len(blob) / len(data):.4f}",
                     f"{len(data) / 1e3 / (t1 - t0):.1f}", f"{len(data) / 1e3 / (t2 - t1):.1f}"])
        print(" ".join(rows[-1]), flush=True)
    header = ["chunk bytes", "chunks side by side", "bits/byte", "encode kB/s", "decode kB/s"]
    text = (f"# text codec: chunk length trade-off\n\n{machine_line()}\n\nFile: {Path(args.file).name} "
            f"({len(data)} bytes), one group, real .ncd sizes.\n\n{_markdown(header, rows)}\n")
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
