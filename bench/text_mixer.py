"""The text codec's in-document mixer, option by option: bits per byte of the network's own
distributions (as the codec computes them, in its chunk layout) mixed by each variant of
`ContextMixer`, on the six evaluation books and on the first 6, 30 and 100 kB of Walden. The
network runs once per input; the variants only re-mix, so this measures the mixer alone (the
range coder adds under 0.1 %, tests/test_text.py).

    python bench/text_mixer.py   ->  bench/results/text_mixer.md
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import neurocodec  # noqa: E402
from neurocodec.families.text.codec import LARGE_INPUT, chunk_length, plan  # noqa: E402
from neurocodec.families.text.context_mix import ContextMixer  # noqa: E402

from report import write_table  # noqa: E402

EVAL = Path("../shared/data/text/eval")
BASE = {"rows_log2": 18, "rate": 0.02, "init": 0.3}
VARIANTS = {
    "orders 3, 5 (before)": {"orders": [3, 5]},
    "orders 3, 5, 7": {"orders": [3, 5, 7]},
    "+ confirm": {"orders": [3, 5, 7], "confirm": True},
    "+ confirm, match": {"orders": [3, 5, 7], "confirm": True, "match": 8},
    "+ confirm, classes, match": {"orders": [3, 5, 7], "confirm": True, "classes": True, "match": 8},
}


def network_distributions(codec, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P[t, stream, byte], bytes[stream, t], chunk sizes): the network's next-byte
    distributions over one group, laid out as the codec lays out `data`."""
    spans = plan(len(data), chunk_length(len(data), codec.chunk, codec.streams), codec.group)
    assert len(spans) == 1, "one group per input"
    sizes = np.array([n for _, n in spans[0]])
    x = np.zeros((len(sizes), sizes.max()), dtype=np.uint8)
    for i, (s, n) in enumerate(spans[0]):
        x[i, :n] = np.frombuffer(data, np.uint8, n, s)
    p = np.zeros((sizes.max(), len(sizes), 256), dtype=np.float64)
    with torch.no_grad():
        prev, h, c = codec.net.initial_state(len(sizes))
        for t in range(sizes.max()):
            active = int((sizes > t).sum())
            w, h, c = codec.net.step(prev[:active], h[:active], c[:active])
            w = w.cpu().numpy()
            p[t, :active] = w / w.sum(axis=1, keepdims=True)
            prev = torch.from_numpy(x[:active, t].astype(np.int64))
    return p, x, sizes


def mixed_bits(p, x, sizes, context: dict) -> float:
    """Bits per byte of `p` mixed by a ContextMixer with `context`, as the codec mixes."""
    mixer = ContextMixer(len(sizes), **BASE, **context, length=x.shape[1])
    bits = 0.0
    for t in range(x.shape[1]):
        active = int((sizes > t).sum())
        q = mixer.mix(p[t, :active])
        s = x[:active, t].astype(np.int64)
        bits -= np.log2(q[np.arange(active), s]).sum()
        mixer.update(s)
    return bits / sizes.sum()


def main() -> None:
    torch.set_num_threads(1)
    codec = neurocodec.load_codec("text")
    books = sorted(EVAL.glob("*.txt"))
    walden = next(b for b in books if b.name.startswith("Walden")).read_bytes()
    inputs = [(f"Walden, first {k} kB", walden[: k * 1000]) for k in (6, 30, 100)]
    inputs += [(b.stem.replace("_", " ")[:40], b.read_bytes()) for b in books]
    rows, start = [], time.time()
    for name, data in inputs:
        p, x, sizes = network_distributions(codec, data)
        bpb = {v: mixed_bits(p, x, sizes, c) for v, c in VARIANTS.items()}
        shipped = "+ confirm, classes, match" if len(data) >= LARGE_INPUT else "+ confirm"
        change = 100 * (bpb[shipped] / bpb["orders 3, 5 (before)"] - 1)
        rows.append(f"| {name} | {len(data) / 1000:.0f} | " + " | ".join(f"{b:.4f}" for b in bpb.values()) + f" | {change:+.2f} % |")
        print(rows[-1], flush=True)
        del p
    write_table(
        "text_mixer.md",
        "Text: the in-document mixer, option by option",
        f"`python bench/text_mixer.py`: bits per byte of the shipped network's distributions mixed by each "
        f"variant (the mixer alone, in the codec's chunk layout; rows_log2 18, rate 0.02, init 0.3). "
        f"The encoder uses confirm from any size and adds classes and match from {LARGE_INPUT:,} bytes on "
        f"(`LARGE_INPUT`). {time.time() - start:.0f} s.",
        ["<input", "kB", *VARIANTS, "shipped rule vs before"],
        rows,
    )


if __name__ == "__main__":
    main()
