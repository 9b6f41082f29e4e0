"""The text benchmark: every file through every codec, real bytes out and back in.

Classic compressors run in the same process at their strongest usual settings (gzip -9,
bzip2 -9, xz -9e, zstd -19, brotli q11), so their times compare directly with the learned
codec's. Sizes are the lengths of the compressed bytes (for neurocodec, the whole .ncd file);
bits per byte = 8 * compressed / original, over all files together.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import time
from pathlib import Path

from .images import _aligned, _markdown, machine_line, write_csv


class TextBaseline:
    lossless = True

    def __init__(self, name: str, compress, decompress):
        self.name, self._compress, self._decompress = name, compress, decompress

    def encode(self, data: bytes) -> bytes:
        return self._compress(data)

    def decode(self, blob: bytes) -> bytes:
        return self._decompress(blob)


def _zstd():
    import zstandard

    return TextBaseline("zstd", zstandard.ZstdCompressor(level=19).compress, lambda b: zstandard.ZstdDecompressor().decompress(b))


def _brotli():
    import brotli

    return TextBaseline("brotli", lambda d: brotli.compress(d, quality=11), brotli.decompress)


TEXT_BASELINES = {
    "gzip": lambda: TextBaseline("gzip", lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress),
    "bzip2": lambda: TextBaseline("bzip2", lambda d: bz2.compress(d, 9), bz2.decompress),
    "xz": lambda: TextBaseline("xz", lambda d: lzma.compress(d, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
    "zstd": _zstd,
    "brotli": _brotli,
}
DEFAULT_CODECS = ("text", *TEXT_BASELINES)


def measure(data: bytes, codec, name: str = "") -> dict:
    t0 = time.perf_counter()
    blob = codec.encode(data)
    t1 = time.perf_counter()
    out = codec.decode(blob)
    t2 = time.perf_counter()
    if bytes(out) != data:
        raise RuntimeError(f"codec '{codec.name}' did not restore {name or 'the input'} exactly")
    return {"file": name, "codec": codec.name, "bytes_in": len(data), "bytes_out": len(blob),
            "bpb": 8 * len(blob) / max(len(data), 1), "encode_s": t1 - t0, "decode_s": t2 - t1}


def run(paths: list[Path], codecs: list, progress: bool = True) -> list[dict]:
    rows = []
    for codec in codecs:
        for p in paths:
            row = measure(p.read_bytes(), codec, p.name)
            rows.append(row)
            if progress:
                print(f"{codec.name:>8} {p.name}: {row['bpb']:.3f} bpb, decode {row['decode_s']:.2f} s", flush=True)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Totals per codec: bits per byte over all files, and speeds in kB/s of original."""
    out = []
    for name in dict.fromkeys(r["codec"] for r in rows):
        rs = [r for r in rows if r["codec"] == name]
        n_in, n_out = sum(r["bytes_in"] for r in rs), sum(r["bytes_out"] for r in rs)
        enc, dec = sum(r["encode_s"] for r in rs), sum(r["decode_s"] for r in rs)
        out.append({"codec": name, "bytes_in": n_in, "bytes_out": n_out, "bpb": 8 * n_out / max(n_in, 1),
                    "encode_kBps": n_in / 1e3 / max(enc, 1e-9), "decode_kBps": n_in / 1e3 / max(dec, 1e-9)})
    return out


def _cells(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["codec", "bytes in", "bytes out", "bits/byte", "encode kB/s", "decode kB/s"]
    cells = [[s["codec"], str(s["bytes_in"]), str(s["bytes_out"]), f"{s['bpb']:.3f}",
              f"{s['encode_kBps']:.1f}", f"{s['decode_kBps']:.1f}"] for s in summary]
    return header, cells


def format_table(summary: list[dict]) -> str:
    return _aligned(*_cells(summary))


def write_results(rows: list[dict], summary: list[dict], out_dir, title: str, prefix: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{prefix}.csv", out_dir / f"{prefix}_summary.md"
    write_csv(rows, csv_path)
    header, cells = _cells(summary)
    files = ", ".join(sorted(dict.fromkeys(r["file"] for r in rows)))
    md_path.write_text(f"# {title}\n\n{machine_line()}\n\nFiles: {files}\n\n{_markdown(header, cells)}\n")
    return [csv_path, md_path]
