"""Peak memory of the streaming layer for inputs the text codec cannot reach on a CPU (it codes
about 20 kB/s per core: 1 GB would take 14 hours), with a stand-in codec that codes fast (a
fixed distribution of byte frequencies, registered in this process).

    python bench/stream_memory.py stream 1024   # neurocodec.open writes 1 GiB produced on the
                                                # fly, then reads it back (checked)
    python bench/stream_memory.py whole 100     # neurocodec.compress/decompress of 100 MiB held
                                                # in memory, for comparison

It shows what the streaming layer (blocks, members, marks, the reader's checks) holds; the
shipped text codec adds its own memory per 2 MiB group, the same for every group (README
"Big inputs" has both measurements).
"""

from __future__ import annotations

import glob
import hashlib
import os
import resource
import sys
import tempfile
import time

import numpy as np

import neurocodec
from neurocodec import compose
from neurocodec.compose.steps import Symbols
from neurocodec.entropy import Categorical


def main() -> None:
    mode, mib = sys.argv[1], int(sys.argv[2])
    books = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/text/eval"
    probs = np.ones(256)
    probs[ord("a") : ord("z") + 1] = 50
    probs[ord(" ")] = 100
    neurocodec.register(compose.LikelihoodCodec("standin", step=lambda s: Symbols(Categorical(probs), s),
                                                modality="text"))
    piece = b"".join(open(p, "rb").read() for p in sorted(glob.glob(f"{books}/*.txt")))[: 1 << 20]
    n = mib * (1 << 20) // len(piece)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if mode == "stream":
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "standin.ncd")
            written = hashlib.blake2b()
            with neurocodec.open(path, "wb", codec="standin") as f:
                for _ in range(n):
                    f.write(piece)
                    written.update(piece)
            size = os.path.getsize(path)
            read = hashlib.blake2b()
            with neurocodec.open(path, "rb") as f:
                while part := f.read(1 << 20):
                    read.update(part)
            assert read.digest() == written.digest()
    else:
        data = piece * n
        blob = neurocodec.compress(data, codec="standin")
        size = len(blob)
        assert neurocodec.decompress(blob) == data
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{mode} {n * len(piece) / 2**20:.0f} MiB -> {size / 2**20:.0f} MiB: peak RSS {peak / 1024:.0f} MiB "
          f"(after imports and set-up {base / 1024:.0f} MiB), {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
