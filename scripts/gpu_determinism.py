"""GPU encode, CPU decode (issue 10, item 3), and the encoder's search on the GPU (item 2).

On the GPU machine (docs/gpu.md; carry .whl and .gpudata/kodak):

    python scripts/gpu_determinism.py encode --codec context --out $OUT/det.tar
    python scripts/gpu_determinism.py encode --codec context --effort 4 --workers 8 --out $OUT/e4.tar

Back on the CPU:

    python scripts/gpu_determinism.py check det.tar [--images ../shared/data/images/kodak] [--write F.md]

`encode` codes every image at each quality with the codec's float transforms on the device
(`codec.to(device)`; the exact networks and the coder stay on the CPU) and writes the .ncd
files into one tar, which comes back as one file. With `--effort` the encoder's search (Gumbel
annealing of the latents, thousands of network passes per tile at the highest effort: hours
of CPU for Kodak) runs there too, in `--workers` processes that share the device. Images are
taken in turn, all qualities of one before the next, and no file is started after
`--deadline` seconds, so that the tar is complete before the device's command limit.

`check` decodes each file on the CPU; the decoder verifies the digest of the symbols that the
GPU encoder wrote, so one differing probability fails the file. For effort 0 it also encodes
the same image on the CPU and reports whether the two files are the same bytes (they need not
be: g_a in float may round a latent differently on the GPU, and the file then codes that
latent, exactly). Then the rate-distortion summary of the images coded at every quality: mean
bpp and PSNR per quality, and PSNR BD-rates against Pillow JPEG 4:2:0 and against the codec at
effort 0 encoded here on the CPU, on the same images in the same run.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import re
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

QUALITIES = "1,25,50,75,100"  # bench/kodak_quick.py's, so BD-rates compare with its table
NAME = re.compile(r"(?P<stem>.+)\.q(?P<q>\d+)(?:\.e(?P<e>\d+))?\.ncd")

_codec = None  # the worker's codec, on the device


def _start_worker(name: str, device: str, threads: int) -> None:
    global _codec
    import torch

    import neurocodec

    torch.set_num_threads(threads)
    _codec = neurocodec.load_codec(name).to(device)


def _encode_one(path: str, quality: int, effort: int, deadline: float):
    """(file name, file, seconds), or None when the deadline has passed."""
    if time.time() > deadline:
        return None
    x = np.asarray(Image.open(path).convert("RGB"))
    start = time.perf_counter()
    blob = _codec.encode(x, quality=quality, effort=effort)
    name = f"{Path(path).stem}.q{quality}" + (f".e{effort}" if effort else "") + ".ncd"
    return name, blob, time.perf_counter() - start


def encode(args) -> None:
    import torch

    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    paths = sorted(Path(args.images).glob("*.png"))[: args.count]
    qualities = [int(q) for q in args.qualities.split(",")]
    deadline = time.time() + args.deadline
    context = multiprocessing.get_context("spawn")  # CUDA does not survive fork
    tasks = [(str(p), q, args.effort, deadline) for p in paths for q in qualities]  # image by image
    coded: dict[str, int] = {}
    with tarfile.open(args.out, "w") as tar, context.Pool(
            args.workers, _start_worker, (args.codec, args.device, args.threads)) as pool:
        for result in pool.imap(_encode_star, tasks):
            if result is None:
                continue
            name, blob, seconds = result
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            stem = name.split(".")[0]
            coded[stem] = coded.get(stem, 0) + 1
            print(f"{name}: {len(blob)} bytes, {seconds:.2f} s on {device} (effort {args.effort})", flush=True)
    whole = sum(n == len(qualities) for n in coded.values())
    print(f"{whole} of {len(paths)} images at all {len(qualities)} qualities in {args.out}")


def _encode_star(task):
    return _encode_one(*task)


def check(args) -> None:
    import neurocodec
    from neurocodec import container
    from neurocodec.bench.metrics import psnr

    rows, failed, coded = [], 0, {}  # coded[(stem, effort, codec)][quality] = (bpp, PSNR)
    images = {}
    with tarfile.open(args.tar) as tar:
        for member in tar.getmembers():
            m = NAME.fullmatch(member.name)
            if m is None:
                raise SystemExit(f"{member.name}: not a file this script wrote")
            stem, q, effort = m["stem"], int(m["q"]), int(m["e"] or 0)
            blob = tar.extractfile(member).read()
            x = images.setdefault(stem, np.asarray(Image.open(Path(args.images) / f"{stem}.png").convert("RGB")))
            codec = neurocodec.load_codec(container.unpack(blob).header.codec)
            try:
                y = neurocodec.decompress(blob)
            except neurocodec.NeurocodecError as e:
                failed += 1
                rows.append(f"| {member.name} | {len(blob)} | FAILED: {e} | | |")
                continue
            same = ("yes" if codec.encode(x, quality=q) == blob else "no") if effort == 0 else "not tried"
            quality = psnr(x, y)
            rows.append(f"| {member.name} | {len(blob)} | decoded, symbols digest verified | {same} | {quality:.2f} |")
            coded.setdefault((stem, effort, codec.name), {})[q] = (8 * len(blob) / (x.shape[0] * x.shape[1]), quality)
    out = ["| file | bytes | CPU decode | same bytes as a CPU encode | PSNR dB |", "|---|---:|---|---|---:|", *rows, "",
           f"{len(rows) - failed} of {len(rows)} GPU-encoded files decode on the CPU to the encoder's symbols", ""]
    out += _summary(coded, images)
    print("\n".join(out))
    if args.write:
        Path(args.write).write_text("\n".join(out) + "\n")
    raise SystemExit(1 if failed else 0)


def _summary(coded, images) -> list[str]:
    """Mean bpp and PSNR per quality over the images coded at every quality, with BD-rates
    against JPEG and against effort 0 encoded here, on those images."""
    import neurocodec
    from neurocodec.bench.baselines import get_baseline
    from neurocodec.bench.metrics import bd_rate_points, psnr

    out, jpeg = [], get_baseline("jpeg")
    for effort, name in sorted({(e, n) for _, e, n in coded}):
        sets = {s: qs for (s, e, n), qs in coded.items() if (e, n) == (effort, name)}
        qualities = sorted(set.intersection(*(set(qs) for qs in sets.values())))
        stems = sorted(s for s, qs in sets.items() if set(qualities) <= set(qs))
        if len(qualities) < 4:
            out.append(f"{name} effort {effort}: fewer than 4 qualities, no BD-rate")
            continue
        curve = [(np.mean([sets[s][q][0] for s in stems]), np.mean([sets[s][q][1] for s in stems])) for q in qualities]
        codec, base, anchor = neurocodec.load_codec(name), {}, {}
        for s in stems:
            x = images[s]
            for q in jpeg.bench_qualities:
                blob = jpeg.encode(x, q)
                anchor.setdefault(q, []).append((8 * len(blob) / (x.shape[0] * x.shape[1]), psnr(x, jpeg.decode(blob))))
            if effort:
                for q in qualities:
                    blob = codec.encode(x, quality=q)
                    base.setdefault(q, []).append((8 * len(blob) / (x.shape[0] * x.shape[1]), psnr(x, codec.decode(blob))))
        mean = lambda points: [tuple(np.mean(points[q], axis=0)) for q in sorted(points)]  # noqa: E731
        out += [f"{name} at effort {effort}, {len(stems)} images ({stems[0]} .. {stems[-1]}), "
                f"mean bpp and mean PSNR per quality:", "",
                "| quality | bpp | PSNR dB |", "|---:|---:|---:|",
                *(f"| {q} | {r:.4f} | {p:.2f} |" for q, (r, p) in zip(qualities, curve)), "",
                f"BD-rate (PSNR) against Pillow JPEG 4:2:0 on these images: {bd_rate_points(mean(anchor), curve):+.1f} %"]
        if effort:
            out.append(f"BD-rate against effort 0 (encoded here on the CPU, same images): {bd_rate_points(mean(base), curve):+.1f} %")
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--codec", default="context")
    e.add_argument("--images", default=".gpudata/kodak")
    e.add_argument("--count", type=int, default=24)
    e.add_argument("--qualities", default=QUALITIES, help="comma-separated, default %(default)s")
    e.add_argument("--effort", type=int, default=0)
    e.add_argument("--workers", type=int, default=1, help="processes sharing the device")
    e.add_argument("--threads", type=int, default=2, help="CPU threads of each worker")
    e.add_argument("--deadline", type=float, default=480, help="seconds after which no image is started")
    e.add_argument("--device", default="cuda")
    e.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("tar")
    c.add_argument("--images", default="../shared/data/images/kodak")
    c.add_argument("--write", help="also write the report to this file")
    args = ap.parse_args()
    encode(args) if args.what == "encode" else check(args)


if __name__ == "__main__":
    main()
