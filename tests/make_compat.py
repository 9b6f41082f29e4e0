"""Write .ncd fixtures of every installed codec into tests/data/compat/, with the output
each must decode to; `test_compat.py` decodes them on every run, forever.

Run it when a codec or a new format version ships: it adds fixtures for what has none and
never overwrites one (a fixture records what an earlier release wrote).

    python tests/make_compat.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

import neurocodec  # noqa: E402

OUT = HERE / "data" / "compat"
MANIFEST = OUT / "manifest.json"


def inputs(codec) -> dict[str, dict]:
    """Small real inputs, described so a test can rebuild them: an odd-sized photo crop (a 1x1
    too for lossless codecs), a text excerpt and an empty text."""
    if codec.modality == "text":
        # "large_mixer": written with the mixer options the encoder keeps for long inputs
        return {"walden2k": {"file": "text/walden_excerpt.txt", "bytes": 2000},
                "walden2k_large": {"file": "text/walden_excerpt.txt", "bytes": 2000, "large_mixer": True},
                "walden6k_learning": {"file": "text/walden_excerpt.txt", "bytes": 5968, "learn_from": 2},
                "empty": {"file": "text/walden_excerpt.txt", "bytes": 0}}
    cases = {"kodim05_37x53": {"file": "kodim05_crop.png", "rows": [11, 48], "cols": [20, 73]}}
    if codec.config.get("family") == "bitsback":  # "refit": with the hidden refit, which so small a crop would not get
        cases["kodim05_37x53_refit"] = dict(cases["kodim05_37x53"], refit=True)
    if codec.lossless:
        cases["1x1"] = {"file": "kodim05_crop.png", "rows": [0, 1], "cols": [0, 1]}
    return cases


def load_input(spec: dict):
    """The input a fixture was made from."""
    path = HERE / "data" / spec["file"]
    if "bytes" in spec:
        return path.read_bytes()[: spec["bytes"]]
    with Image.open(path) as im:
        photo = np.asarray(im.convert("RGB"))
    (r0, r1), (c0, c1) = spec["rows"], spec["cols"]
    return np.ascontiguousarray(photo[r0:r1, c0:c1])


def format_suffix(blob: bytes) -> str:
    """What a file's header says about additions to its codec's format: "-sym" for the digest
    of the coded symbols (lossy files since 0.1.0+symbols), "-adapt" for vqlossless's, idf's and
    bitsback's calibration to the image ("-adapt2": of the means too), "-bias", "-fit" and
    "-fitscale" for bitsback's means moved by the image's bias, by its fit, and its scales too, "-hidden" for its
    means refitted on the hidden layer ("-hiddenscale": its log-scales too), "-mean" for bitsback's first tiles without borrowed
    bits, "-zbinN" for its latent bins of width 2**-N, "-confirm" and "-match" for the text mixer's hash confirmation and match model,
    "-learn" for text's output layer learning as it codes, "-logistic" for its bitwise logistic mixing ("-logistic2": with word contexts), "-start" for its chunks' learned start
    state, "-warm" for its mixers' warm start, "-v2" for the container's version 2
    (deflated headers). A fixture per format, so each stays covered."""
    params = neurocodec.container.unpack(blob).header.params
    context = params.get("context", {})
    return ("-sym" if "symbols" in params else "") + ("-adapt" if params.get("adapt") else "") + ("2" if params.get("adapt") == 2 else "") + \
        ("-bias" if "bias" in params else "") + ("-fit" if "fit" in params else "") + \
        ("scale" if "fit_scale" in params else "") + ("-hidden" if "fit_hidden" in params else "") + \
        ("scale" if "fit_hidden_scale" in params else "") + \
        ("-mean" if params.get("mean_first") else "") + (f"-zbin{params['zbin']}" if "zbin" in params else "") + \
        ("-confirm" if context.get("confirm") else "") + ("-match" if context.get("match") else "") + \
        ("-learn" if params.get("learn") else "") + ("-logistic" if params.get("logistic") else "") + ("2" if params.get("logistic") == 2 else "") + \
        ("-start" if params.get("start") else "") + ("-warm" if params.get("warm") else "") + \
        ("-v2" if blob[8:10] == b"\x02\x00" else "")


def encode(codec, x, spec: dict, quality):
    """`codec.encode(x, quality)`, with the text mixer of long inputs, the output layer
    learning in narrow groups and bitsback's hidden refit where `spec` asks for them."""
    from neurocodec.families.bitsback import codec as bitsback
    from neurocodec.families.text import codec as text

    large_from, learn_from, margin = text.LARGE_INPUT, text.LEARN_FROM_CHUNKS, bitsback.HIDDEN_MARGIN
    text.LARGE_INPUT = 0 if spec.get("large_mixer") else large_from
    text.LEARN_FROM_CHUNKS = spec.get("learn_from", learn_from)
    bitsback.HIDDEN_MARGIN = 0.0 if spec.get("refit") else margin
    try:
        return codec.encode(x, quality=quality)
    finally:
        text.LARGE_INPUT, text.LEARN_FROM_CHUNKS, bitsback.HIDDEN_MARGIN = large_from, learn_from, margin


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else []
    have = {m["file"] for m in manifest}
    for name in neurocodec.available_codecs():
        codec = neurocodec.load_codec(name)
        digest = codec.weights_digest.hex()[:12]
        qualities = [None] if codec.lossless else [10, 50, 95]
        for case, spec in inputs(codec).items():
            x = load_input(spec)
            for q in qualities:
                blob = encode(codec, x, spec, q)
                stem = f"{name}-{digest}-{case}" + ("" if q is None else f"-q{q}") + format_suffix(blob)
                if f"{stem}.ncd" in have:
                    continue
                out = codec.decode(blob)
                (OUT / f"{stem}.ncd").write_bytes(blob)
                if codec.modality == "text":
                    expected = f"{stem}.txt"
                    (OUT / expected).write_bytes(out)
                else:
                    expected = f"{stem}.png"
                    Image.fromarray(out).save(OUT / expected)
                entry = {"file": f"{stem}.ncd", "expected": expected, "codec": name, "lossless": codec.lossless,
                         "version": neurocodec.__version__, "input": spec}
                manifest.append(entry if q is None else dict(entry, quality=q))
                print("wrote", stem)
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
