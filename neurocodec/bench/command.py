"""`neurocodec bench`: shipped codecs and classic baselines on one folder of images."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from . import baselines, images, text

DEFAULT_FOLDER = Path("../shared/data/images/kodak")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}


def resolve(name: str):
    """A shipped codec by name ("NAME@E": encoding at effort E), else a classic baseline."""
    from ..registry import available_codecs, load_codec

    base, at, effort = name.partition("@")
    if at and base in available_codecs():
        codec = load_codec(base)
        if not effort.isdigit() or int(effort) not in codec.efforts:
            raise InputError(f"codec '{base}' takes effort {', '.join(map(str, codec.efforts))}, got '{effort}'")
        return AtEffort(codec, int(effort))
    if name in available_codecs():
        return load_codec(name)
    if name in baselines.BASELINES:
        return baselines.get_baseline(name)
    if name in text.TEXT_BASELINES:
        return text.TEXT_BASELINES[name]()
    known = ", ".join(available_codecs() + sorted(baselines.BASELINES) + sorted(text.TEXT_BASELINES))
    raise InputError(f"unknown codec '{name}' (known: {known})")


class AtEffort:
    """A shipped codec that encodes at a fixed effort, benchmarked under the name "NAME@E" (so
    one table compares a codec's levels side by side)."""

    def __init__(self, codec, effort: int):
        self.codec, self.effort, self.name = codec, effort, f"{codec.name}@{effort}"

    def encode(self, x, quality=None):
        return self.codec.encode(x, quality=quality, effort=self.effort)

    def __getattr__(self, attr):  # decode, lossless, bench_qualities, ... are the codec's
        return getattr(self.codec, attr)


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def is_text_folder(folder: Path) -> bool:
    """A folder with files but no images is benchmarked as text."""
    files = _visible_files(folder)
    return bool(files) and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in files)


def run_text_benchmark(folder, names, out_dir, prefix=None, limit=None, print_only=False) -> list[dict]:
    folder = Path(folder)
    paths = _visible_files(folder)[:limit]
    codecs = [resolve(n.strip()) for n in (names or text.DEFAULT_CODECS) if n.strip()]
    rows = text.run(paths, codecs)
    summary = text.summarize(rows)
    click.echo(text.format_table(summary))
    if not print_only:
        title = f"{folder.name}: {', '.join(c.name for c in codecs)}"
        for p in text.write_results(rows, summary, out_dir, title, prefix or f"{folder.name}_text"):
            click.echo(f"wrote {p}")
    return summary


def image_codecs(lossless: bool) -> list[str]:
    """Every installed image codec of the kind, then the classic baselines of that kind."""
    from ..registry import available_codecs, read_config

    configs = {n: read_config(n) for n in available_codecs()}
    shipped = [n for n, c in configs.items() if c.get("modality") == "image" and bool(c.get("lossless")) == lossless]
    return shipped + list(baselines.LOSSLESS if lossless else images.LOSSY_BASELINES)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _bench_one(path: Path, names: list[str], qualities) -> list[dict]:
    """Every codec on one image, in a worker process (codecs load once per process)."""
    return images.run([path], [resolve(n) for n in names], progress=False, qualities=qualities)


def _bench_on_one_thread(path: Path, names: list[str], qualities) -> list[dict]:
    """`_bench_one` on a dask worker, on one torch thread whatever the cluster's settings."""
    _one_thread()
    return _bench_one(path, names, qualities)


def _run_images(paths, names, qualities, jobs: int, engine: dict | None = None) -> list[dict]:
    """`images.run` over `paths`; with jobs > 1, that many images at a time, each worker
    process on one torch thread (so times compare with a one-thread run, not a two-thread one);
    with `engine` (--engine dask), one image per task on a dask cluster's workers, each on
    one torch thread, which read the images by their paths (a cluster reached with --address
    must see the folder at the same path)."""
    if engine is not None:
        from tqdm import tqdm

        from ..engine import Cluster

        with Cluster(engine["address"], engine["workers"]) as cluster:
            n = len(paths)
            parts = cluster.client.map(_bench_on_one_thread, [Path(p).resolve() for p in paths], [names] * n,
                                       [qualities] * n, pure=False)
            return [row for part in tqdm(parts, total=n, unit="image") for row in part.result()]
    if jobs <= 1:
        return images.run(paths, [resolve(n) for n in names], progress=True, qualities=qualities)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch state
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
        parts = pool.map(_bench_one, paths, [names] * len(paths), [qualities] * len(paths))
        return [row for part in tqdm(parts, total=len(paths), unit="image") for row in part]


def run_image_benchmark(folder, names, out_dir, prefix=None, limit=None, print_only=False, qualities=None,
                        lossless=False, jobs=1, engine: dict | None = None) -> list[dict]:
    folder = Path(folder) if folder else DEFAULT_FOLDER
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (give a folder of images)")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise InputError(f"{folder}: no images")
    default = image_codecs(lossless)
    names = [n.strip() for n in (names or default) if n.strip()]
    codecs = [resolve(n) for n in names]  # unknown names fail here, before any work
    sweep = tuple(int(q) for q in qualities.split(",")) if qualities else None
    rows = _run_images(paths, names, sweep, jobs, engine)
    summary = images.summarize(rows)
    click.echo(images.format_table(summary))
    rates = images.bd_rates(summary, "jpeg")
    if len(rates) > 1:
        click.echo("BD-rate against jpeg (PSNR): " + ", ".join(f"{c} {v:+.1f}%" for c, v in rates.items() if c != "jpeg"))
    if not print_only:
        any_lossy = any(not c.lossless for c in codecs)
        prefix = prefix or f"{folder.name}_{'lossy' if any_lossy else 'lossless'}"
        title = f"{folder.name}: {', '.join(c.name for c in codecs)}"
        if engine is not None:
            title += " (on a dask cluster, each worker on one torch thread)"
        elif jobs > 1:
            title += f" ({jobs} images at a time, each process on one torch thread)"
        for p in images.write_results(rows, summary, out_dir, title, prefix=prefix):
            click.echo(f"wrote {p}")
    return summary
