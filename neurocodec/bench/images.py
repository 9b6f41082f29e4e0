"""The image benchmark: code every image with every codec at each of its qualities, then
summarize, compute BD-rates and write a CSV, a Markdown report and RD plots.

Codecs are any objects with the codec protocol (neurocodec codecs or `baselines`); names of
baselines are accepted too. Everything runs in this process, so times are comparable.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from . import baselines
from .metrics import bd_rate, bpp, ms_ssim, ms_ssim_db, psnr


LOSSY_BASELINES = ("jpeg", "webp", "avif", "jxl")  # after every shipped lossy image codec


def load_image(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _qualities(codec) -> tuple:
    """The qualities to sweep; a codec without a sweep is run once at its default."""
    return tuple(codec.bench_qualities) or (None if codec.lossless else getattr(codec, "default_quality", None),)


def _track(items: list, enabled: bool):
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            return items
        return tqdm(items, unit="code", dynamic_ncols=True)
    return items


def measure(img: np.ndarray, codec, quality, image_name: str = "") -> dict:
    """One encode/decode of `img`: sizes, times and distortion."""
    t0 = time.perf_counter()
    blob = codec.encode(img, quality=quality)
    t1 = time.perf_counter()
    out = np.asarray(codec.decode(blob))
    t2 = time.perf_counter()
    if out.shape != img.shape:
        raise RuntimeError(f"codec '{codec.name}' decoded shape {out.shape}, expected {img.shape}")
    exact = bool(np.array_equal(out, img))
    h, w = img.shape[:2]
    return {
        "image": image_name,
        "codec": codec.name,
        "quality": quality,
        "lossless": bool(codec.lossless),
        "height": h,
        "width": w,
        "bytes": len(blob),
        "bpp": bpp(len(blob), img),
        "bpsp": 8 * len(blob) / img.size if codec.lossless else None,
        "psnr": math.inf if exact else psnr(img, out),
        "ms_ssim": 1.0 if exact else ms_ssim(img, out),
        "exact": exact,
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
    }


def run(image_paths, codecs, progress: bool = True, qualities=None) -> list[dict]:
    """A row per (image, codec, quality); see `measure` for the columns.

    `qualities`, if given, replaces the sweep of every lossy codec.
    """
    codecs = [baselines.get_baseline(c) if isinstance(c, str) else c for c in codecs]
    for codec in codecs:
        if codec.modality != "image":
            raise ValueError(f"codec '{codec.name}' codes {codec.modality}, not images")
    plan = [
        (codec, q)
        for codec in codecs
        for q in (qualities if qualities and not codec.lossless else _qualities(codec))
    ]
    work = [(Path(p), codec, q) for p in image_paths for codec, q in plan]
    rows, img, img_path = [], None, None
    for path, codec, q in _track(work, progress):
        if path != img_path:
            img, img_path = load_image(path), path
        rows.append(measure(img, codec, q, path.name))
    return rows


_MEANS = ("bpp", "bpsp", "psnr", "ms_ssim", "encode_s", "decode_s")


def summarize(rows: list[dict]) -> list[dict]:
    """Means over images per (codec, quality), in the order the rows came."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["codec"], r["quality"]), []).append(r)
    summary = []
    for (codec, quality), rs in groups.items():
        s = {"codec": codec, "quality": quality, "lossless": rs[0]["lossless"], "images": len(rs)}
        for key in _MEANS:
            values = [r[key] for r in rs if r[key] is not None]
            s[key] = float(np.mean(values)) if values else None
        s["exact"] = all(r["exact"] for r in rs) if rs[0]["lossless"] else None
        megapixels = sum(r["height"] * r["width"] for r in rs) / 1e6
        for key in ("encode", "decode"):  # megapixels per second over all the images
            seconds = sum(r[f"{key}_s"] or 0.0 for r in rs)
            s[f"{key}_mps"] = megapixels / seconds if seconds > 0 else None
        summary.append(s)
    return summary


def _curves(summary: list[dict]) -> dict[str, list[dict]]:
    """The lossy summary rows per codec, sorted by rate."""
    curves: dict[str, list[dict]] = {}
    for s in summary:
        if not s["lossless"]:
            curves.setdefault(s["codec"], []).append(s)
    return {c: sorted(pts, key=lambda s: s["bpp"]) for c, pts in curves.items()}


def bd_rates(summary: list[dict], anchor: str = "jpeg") -> dict[str, float]:
    """BD-rate (PSNR, percent) of each lossy codec against `anchor`; empty without the anchor."""
    curves = _curves(summary)
    if anchor not in curves:
        return {}
    a = curves[anchor]
    rate_a, psnr_a = [s["bpp"] for s in a], [s["psnr"] for s in a]
    return {c: bd_rate(rate_a, psnr_a, [s["bpp"] for s in pts], [s["psnr"] for s in pts]) for c, pts in curves.items()}


# --- tables --------------------------------------------------------------------------------


def _num(x, fmt: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if x == math.inf else format(x, fmt)


def _lossy_table(summary):
    header = ["codec", "quality", "bpp", "PSNR dB", "MS-SSIM", "encode s", "decode s"]
    cells = [
        [s["codec"], _num(s["quality"], "d"), _num(s["bpp"], ".4f"), _num(s["psnr"], ".2f"),
         _num(s["ms_ssim"], ".4f"), _num(s["encode_s"], ".3f"), _num(s["decode_s"], ".3f")]
        for s in summary
        if not s["lossless"]
    ]
    return header, cells


def _lossless_table(summary):
    header = ["codec", "bpsp", "bpp", "exact", "encode s", "decode s", "encode MP/s", "decode MP/s"]
    cells = [
        [s["codec"], _num(s["bpsp"], ".4f"), _num(s["bpp"], ".4f"), "yes" if s["exact"] else "NO",
         _num(s["encode_s"], ".3f"), _num(s["decode_s"], ".3f"), _num(s["encode_mps"], ".3f"), _num(s["decode_mps"], ".3f")]
        for s in summary
        if s["lossless"]
    ]
    return header, cells


def _aligned(header, cells) -> str:
    widths = [max(len(str(v)) for v in col) for col in zip(header, *cells)]
    lines = [header, ["-" * w for w in widths], *cells]
    return "\n".join(
        "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(line, widths))) for line in lines
    )


def _markdown(header, cells) -> str:
    lines = [header, ["---"] + ["---:"] * (len(header) - 1), *cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def format_table(summary: list[dict]) -> str:
    """The summary as aligned plain text: a lossy table and/or a lossless one."""
    tables = [_lossy_table(summary), _lossless_table(summary)]
    return "\n\n".join(_aligned(h, cells) for h, cells in tables if cells)


# --- report --------------------------------------------------------------------------------


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (
        f"{datetime.now():%Y-%m-%d %H:%M} · {platform.system()} {cpu} · {os.cpu_count()} CPUs · "
        f"torch {torch.get_num_threads()} threads"
    )


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_results(rows, summary, out_dir, title: str, prefix: str = "bench", anchor: str = "jpeg") -> list[Path]:
    """Write `<prefix>.csv` (per-image rows), `<prefix>_summary.md` and the plots; return the paths.

    A lossy part gets the RD plot `<prefix>_rd.png` and BD-rates against `anchor`; a lossless
    part gets the bar plot `<prefix>_bpsp.png`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, report = out_dir / f"{prefix}.csv", out_dir / f"{prefix}_summary.md"
    write_csv(rows, table)

    n_images = len({r["image"] for r in rows})
    md = [f"# {title}", "", f"{n_images} images · {machine_line()}", ""]
    plots = []
    header, cells = _lossy_table(summary)
    if cells:
        rd = out_dir / f"{prefix}_rd.png"
        plot_rd(summary, rd, title)
        md += ["## Lossy", "", _markdown(header, cells), ""]
        rates = bd_rates(summary, anchor)
        if len(rates) > 1:
            bd_cells = [[c, f"{v:+.1f}%" if math.isfinite(v) else "-"] for c, v in rates.items()]
            md += [f"### BD-rate against {anchor} (PSNR)", "", _markdown(["codec", "BD-rate"], bd_cells), ""]
        md += [f"![rate-distortion]({rd.name})", ""]
        plots.append(rd)
    header, cells = _lossless_table(summary)
    if cells:
        bars = out_dir / f"{prefix}_bpsp.png"
        _plot_bpsp(summary, bars, title)
        md += ["## Lossless", "", _markdown(header, cells), "", f"![bits per sub-pixel]({bars.name})", ""]
        plots.append(bars)
    report.write_text("\n".join(md))
    return [table, report, *plots]


def _figure(**kwargs):
    # a bare Figure renders with Agg on savefig, without touching pyplot's global backend
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_rd(summary, path: Path, title: str) -> None:
    """PSNR and MS-SSIM (dB) against bpp of the lossy rows of `summary` (dicts with codec,
    lossless, bpp, psnr and ms_ssim), one curve per codec."""
    fig = _figure(figsize=(12, 5), layout="constrained")
    ax_psnr, ax_ssim = fig.subplots(1, 2)
    for codec, pts in _curves(summary).items():
        rate = [s["bpp"] for s in pts]
        ax_psnr.plot(rate, [s["psnr"] for s in pts], "o-", ms=4, label=codec)
        ax_ssim.plot(rate, [ms_ssim_db(s["ms_ssim"]) for s in pts], "o-", ms=4, label=codec)
    for ax, ylabel in ((ax_psnr, "PSNR (dB)"), (ax_ssim, "MS-SSIM (dB), -10 log10(1 - MS-SSIM)")):
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=120)


def _plot_bpsp(summary, path: Path, title: str) -> None:
    pts = [s for s in summary if s["lossless"]]
    fig = _figure(figsize=(7, 0.5 * len(pts) + 1.5), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh([s["codec"] for s in pts], [s["bpsp"] for s in pts])
    ax.bar_label(bars, fmt="%.3f", padding=3)
    ax.invert_yaxis()
    ax.set_xlabel("bits per sub-pixel")
    ax.margins(x=0.15)
    ax.set_title(title)
    fig.savefig(path, dpi=120)
