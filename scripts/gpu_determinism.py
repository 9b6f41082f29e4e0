"""GPU encode, CPU decode: the coded symbols must not depend on the device (issue 10, item 3).

On the GPU machine (docs/gpu.md; carry .whl and .gpudata/kodak):

    python scripts/gpu_determinism.py encode --codec context --images .gpudata/kodak --out $OUT/det.tar

Back on the CPU:

    python scripts/gpu_determinism.py check det.tar [--images ../shared/data/images/kodak]

`encode` codes every image at each quality with the codec's float transforms on the device
(`codec.to(device)`; the exact networks and the coder stay on the CPU) and writes the .ncd
files into one tar, which comes back as one file. `check` decodes each file on the CPU; the
decoder verifies the digest of the symbols that the GPU encoder wrote, so one differing
probability fails the file. It also encodes the same image on the CPU and reports whether the
two files are the same bytes (they need not be: g_a in float may round a latent differently
on the GPU, and the file then codes that latent, exactly) and the PSNR of the decode.
"""

from __future__ import annotations

import argparse
import io
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

QUALITIES = (1, 50, 100)


def encode(args) -> None:
    import torch

    import neurocodec

    codec = neurocodec.load_codec(args.codec).to(args.device)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    with tarfile.open(args.out, "w") as tar:
        for path in sorted(Path(args.images).glob("*.png"))[: args.count]:
            x = np.asarray(Image.open(path).convert("RGB"))
            for q in QUALITIES:
                start = time.perf_counter()
                blob = codec.encode(x, quality=q)
                info = tarfile.TarInfo(f"{path.stem}.q{q}.ncd")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
                print(f"{path.name} q{q}: {len(blob)} bytes, {time.perf_counter() - start:.2f} s on {device}", flush=True)


def check(args) -> None:
    import neurocodec
    from neurocodec import container
    from neurocodec.bench.metrics import psnr

    rows, failed = [], 0
    with tarfile.open(args.tar) as tar:
        for member in tar.getmembers():
            blob = tar.extractfile(member).read()
            stem, q = member.name.rsplit(".", 2)[0], int(member.name.rsplit(".", 2)[1][1:])
            x = np.asarray(Image.open(Path(args.images) / f"{stem}.png").convert("RGB"))
            codec = neurocodec.load_codec(container.unpack(blob).header.codec)
            try:
                y = neurocodec.decompress(blob)
            except neurocodec.NeurocodecError as e:
                failed += 1
                rows.append(f"| {member.name} | {len(blob)} | FAILED: {e} | | |")
                continue
            same = codec.encode(x, quality=q) == blob
            rows.append(f"| {member.name} | {len(blob)} | decoded, symbols digest verified | {'yes' if same else 'no'} | {psnr(x, y):.2f} |")
    print("| file | bytes | CPU decode | same bytes as a CPU encode | PSNR dB |\n|---|---:|---|---|---:|")
    print("\n".join(rows))
    print(f"\n{len(rows) - failed} of {len(rows)} GPU-encoded files decode on the CPU to the encoder's symbols")
    raise SystemExit(1 if failed else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--codec", default="context")
    e.add_argument("--images", default=".gpudata/kodak")
    e.add_argument("--count", type=int, default=24)
    e.add_argument("--device", default="cuda")
    e.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("tar")
    c.add_argument("--images", default="../shared/data/images/kodak")
    args = ap.parse_args()
    encode(args) if args.what == "encode" else check(args)


if __name__ == "__main__":
    main()
