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


def inputs(codec) -> dict[str, object]:
    """Small real inputs: an odd-sized photo crop (a 1x1 too for lossless codecs), a text excerpt."""
    if codec.modality == "text":
        text = (HERE / "data" / "text" / "walden_excerpt.txt").read_bytes()
        return {"walden2k": text[:2000], "empty": b""}
    with Image.open(HERE / "data" / "kodim05_crop.png") as im:
        photo = np.asarray(im.convert("RGB"))
    cases = {"kodim05_37x53": np.ascontiguousarray(photo[11:48, 20:73])}
    if codec.lossless:
        cases["1x1"] = np.ascontiguousarray(photo[:1, :1])
    return cases


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else []
    have = {m["file"] for m in manifest}
    for name in neurocodec.available_codecs():
        codec = neurocodec.load_codec(name)
        digest = codec.weights_digest.hex()[:12]
        qualities = [None] if codec.lossless else [10, 50, 95]
        for case, x in inputs(codec).items():
            for q in qualities:
                stem = f"{name}-{digest}-{case}" + ("" if q is None else f"-q{q}")
                if f"{stem}.ncd" in have:
                    continue
                blob = codec.encode(x, quality=q)
                out = codec.decode(blob)
                (OUT / f"{stem}.ncd").write_bytes(blob)
                if codec.modality == "text":
                    expected = f"{stem}.txt"
                    (OUT / expected).write_bytes(out)
                else:
                    expected = f"{stem}.png"
                    Image.fromarray(out).save(OUT / expected)
                manifest.append({"file": f"{stem}.ncd", "expected": expected, "codec": name,
                                 "lossless": codec.lossless, "version": neurocodec.__version__})
                print("wrote", stem)
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
