"""The `neurocodec` command, in the habits of gzip and zstd.

    neurocodec compress FILE... [-c CODEC] [-q QUALITY] [-o OUT] [-f] [--rm]
    neurocodec decompress FILE.ncd... [-o OUT] [-f] [--rm] [-N]
    neurocodec info FILE.ncd...      neurocodec codecs
    neurocodec bench [FOLDER]        neurocodec train hyperprior|text ...

Sources are kept unless --rm is given (as zstd does; -k is accepted for gzip's habit). An
output that exists is refused without -f. Every output is written to a temporary file beside
it and renamed into place, so a failure never leaves half a file. Errors are one line on
stderr and a non-zero exit status.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import click

from .errors import NeurocodecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"}


class Failed(Exception):
    """A per-file failure already worded for the user."""


def _fail(msg: str) -> None:
    click.echo(f"neurocodec: {msg}", err=True)


def atomic_write(path: Path, data: bytes | None = None, writer=None) -> None:
    """Write `data` (or call `writer(file)`) to a temporary file, then rename it to `path`.

    The file gets the mode `open()` would give it (0666 less the umask), reaches the disk
    (fsync) before the rename, and the rename reaches it too (fsync of the folder) before this
    returns: after a power cut there is the old file or the whole new one, and --rm can delete
    the source safely once this has returned."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            if writer is not None:
                writer(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover  (e.g. Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover  (some file systems refuse fsync of a folder)
        pass
    finally:
        os.close(fd)


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise Failed(f"{path}: {e.strerror or e}") from None


def _load_image(data: bytes, label: str):
    from PIL import Image, UnidentifiedImageError

    from . import inputs, limits

    try:
        with warnings.catch_warnings():
            # Pillow's own check refuses images over 2 x Image.MAX_IMAGE_PIXELS at open; below
            # that it only warns, and neurocodec's limit (checked here, before decoding) rules
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                limits.check_size("image", (im.size[1], im.size[0], 3), "the image")
                bits = inputs.sample_bits(im)  # Pillow opens 16-bit RGB as RGB; lossless codecs must know
                im.load()
                copy = im.copy()
                if bits > 8:
                    copy.info[inputs.SAMPLE_BITS_KEY] = bits
                return copy
    except Image.DecompressionBombError as e:
        raise Failed(f"{label}: {e} (Pillow's PIL.Image.MAX_IMAGE_PIXELS)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise Failed(f"{label}: not a readable image ({e})") from None


def _is_image(path: str, data: bytes) -> bool:
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return True
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)):
            return True
    except Image.DecompressionBombError:
        return True  # an image, too big: _load_image says so
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def _check_output(out: Path | None, force: bool, label: str) -> None:
    """Refuse, before any coding, an output that cannot or may not be written."""
    if out is None:
        if sys.stdout.isatty():
            raise Failed(f"{label}: refusing to write binary data to a terminal (use -o FILE)")
        return
    if out.is_dir():
        raise Failed(f"{out}: is a folder; name a file with -o, or use --output-dir")
    if (out.exists() or out.is_symlink()) and not force:
        raise Failed(f"{out}: already exists; use -f to overwrite")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise Failed(f"{out}: cannot write it: there is no folder '{folder}'")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Failed(f"{out}: cannot write it: no permission to create files in '{folder}'")


def _emit(out: Path | None, data: bytes, force: bool, label: str) -> None:
    if out is None:  # standard output
        if sys.stdout.isatty():
            raise Failed(f"{label}: refusing to write binary data to a terminal (use -o FILE)")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if out.exists() and not force:
        raise Failed(f"{out}: already exists; use -f to overwrite")
    atomic_write(out, data)


def _one_line(text: str, limit: int = 300) -> str:
    """`text` on one line (control characters escaped), cut to `limit` characters."""
    line = " ".join(_printable(str(text)).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _printable(text: str) -> str:
    """`text` with control characters (terminal escapes, newlines, ...) shown as escapes."""
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)


def _run_each(files: tuple[str, ...], work) -> None:
    """Run `work(file)` for each file; report failures one line each; exit 1 if any failed.

    No exception becomes a traceback: a file that makes the decoder run out of memory or fail
    inside torch is reported like any other failure (set NEUROCODEC_DEBUG=1 for tracebacks)."""
    failed = 0
    for f in files:
        label = "<stdin>" if f == "-" else f
        try:
            work(f)
        except Failed as e:
            _fail(_one_line(str(e)))
        except NeurocodecError as e:
            _fail(_one_line(f"{label}: {e}"))
        except OSError as e:
            where = e.filename if e.filename not in (None, f) else label
            _fail(_one_line(f"{where}: {e.strerror or e}"))
        except MemoryError as e:
            _fail(_one_line(f"{label}: out of memory" + (f" ({e})" if str(e) else "")))
        except Exception as e:  # noqa: BLE001  a bug or an unforeseen input: still one line
            if os.environ.get("NEUROCODEC_DEBUG"):
                raise
            _fail(_one_line(f"{label}: {type(e).__name__}: {e}"))
        else:
            continue
        failed += 1
    if failed:
        sys.exit(1)


def _check_output_option(files: tuple[str, ...], output: str | None) -> None:
    if output is not None and len(files) > 1:
        raise click.UsageError("-o names one output; give one input file with it")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurocodec")
def main() -> None:
    """Learned compression of images and text."""


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("-c", "--codec", help="codec name (see `neurocodec codecs`); default: by file type")
@click.option("-q", "--quality", type=click.IntRange(1, 100), help="quality 1..100 for lossy codecs")
@click.option("--lossless", is_flag=True, help="use the best lossless codec for the file type")
@click.option("-o", "--output", help="output file ('-' for standard output)")
@click.option("--output-dir", type=click.Path(file_okay=False), help="write outputs into this folder")
@click.option("-f", "--force", is_flag=True, help="overwrite existing outputs")
@click.option("-k", "--keep", is_flag=True, help="keep source files (the default)")
@click.option("--rm", "remove", is_flag=True, help="remove each source file after success")
@click.option("-v", "--verbose", is_flag=True, help="report size, and for images bpp and the PSNR really achieved")
def compress(files, codec, quality, lossless, output, output_dir, force, keep, remove, verbose) -> None:
    """Compress FILES to FILE.ncd ('-' reads standard input)."""
    from . import api

    _check_output_option(files, output)

    def work(path: str) -> None:
        label = "<stdin>" if path == "-" else path
        name = "" if path == "-" else Path(path).name
        out = _output_path(output, output_dir, path, lambda p: p.with_name(p.name + ".ncd"))
        _check_output(out, force, label)  # before the (slow) encode
        data = _read_input(path)
        obj = _compress_input(path, data, label, codec)
        blob = api.compress(obj, codec=codec, quality=quality, lossless=lossless, name=name)
        _emit(out, blob, force, label)
        if verbose:
            click.echo(f"{label}: {_report(obj, blob)}", err=True)
        if remove and path != "-" and out is not None:
            os.unlink(path)

    _run_each(files, work)


def _compress_input(path: str, data: bytes, label: str, codec: str | None):
    """What `compress` codes: a Pillow image for image files (or an image codec), the bytes
    themselves otherwise (and always for a text codec, whatever the file holds)."""
    modality = None
    if codec is not None:
        from .registry import read_config

        modality = read_config(codec).get("modality")
    if modality == "text":
        return data
    if _is_image(path, data):
        return _load_image(data, label)
    if modality == "image":
        raise Failed(f"{label}: codec '{codec}' codes images, and this is not an image file (PNG, JPEG, WebP, ...)")
    return data


def _report(obj, blob: bytes) -> str:
    """Size and, for images, bits per pixel and the PSNR of the real decoded file."""
    from . import api

    if isinstance(obj, bytes):
        return f"{len(obj)} -> {len(blob)} bytes, {8 * len(blob) / max(len(obj), 1):.3f} bits per byte"
    import numpy as np

    from .codec import as_rgb_image

    img = as_rgb_image(obj)
    mse = np.mean((api.decompress(blob).astype(np.float64) - img) ** 2)
    quality = f"lossless, {8 * len(blob) / img.size:.3f} bpsp" if mse == 0 else f"{10 * np.log10(255**2 / mse):.2f} dB PSNR"
    return f"{len(blob)} bytes, {8 * len(blob) / (img.shape[0] * img.shape[1]):.3f} bpp, {quality}"


def _output_path(output: str | None, output_dir: str | None, path: str, default) -> Path | None:
    """-o as given; else the default name, in --output-dir if given; None for stdout."""
    if output is not None:
        return None if output == "-" else Path(output)
    if path == "-" and output_dir is None:
        return None
    name = default(Path("stdin" if path == "-" else path))
    if output_dir is None:
        return name
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    return Path(output_dir) / name.name


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", help="output file ('-' for standard output); its suffix picks the image format")
@click.option("--output-dir", type=click.Path(file_okay=False), help="write outputs into this folder")
@click.option("-f", "--force", is_flag=True, help="overwrite existing outputs")
@click.option("-k", "--keep", is_flag=True, help="keep .ncd files (the default)")
@click.option("--rm", "remove", is_flag=True, help="remove each .ncd file after success")
@click.option("-N", "--name", "use_name", is_flag=True,
              help="name the output after the original file, as stored in FILE.ncd (as gzip -N)")
def decompress(files, output, output_dir, force, keep, remove, use_name) -> None:
    """Restore FILE.ncd: images as PNG (unless -o names another format), bytes as they were.

    The output is FILE.ncd without .ncd (images: with .png for any image suffix), beside it or
    in --output-dir; -N uses the original's name stored in the file instead."""
    from . import api, container

    _check_output_option(files, output)

    def work(path: str) -> None:
        label = "<stdin>" if path == "-" else path
        box = container.unpack(_read_input(path))
        h = box.header
        out = _output_path(output, output_dir, path, lambda p: _restored_name(p, h, use_name))
        _check_output(out, force, label)  # before the (slow) decode
        fmt = _image_format(out) if h.modality == "image" else None
        result = api.decode_container(box)
        if h.modality == "image":
            data = _encode_image(result, out, fmt)
        else:
            data = bytes(result)
        _emit(out, data, force, label)
        if remove and path != "-" and out is not None:
            os.unlink(path)

    _run_each(files, work)


def _restored_name(path: Path, header, use_name: bool = False) -> Path:
    """Where `decompress` writes FILE.ncd by default: FILE (images: FILE with its image suffix,
    if any, made .png), beside it. The name stored in the header is used only when asked for
    (-N), and never when it could leave the folder, hide a terminal escape or be no name."""
    stem = path.name[: -len(".ncd")] if path.name.lower().endswith(".ncd") else ""
    if use_name and header.name:
        if not _safe_name(header.name):
            shown = _one_line(repr(header.name), 80)
            raise Failed(f"{path}: the stored name {shown} is not a plain file name; decompress without -N")
        stem = header.name
    if header.modality == "image":  # FILE.png.ncd -> FILE.png, FILE.jpg.ncd -> FILE.png, FILE.ncd -> FILE.png
        base = Path(stem or path.name)
        return path.with_name((base.stem if base.suffix.lower() in IMAGE_SUFFIXES else base.name) + ".png")
    return path.with_name(stem or path.name + ".out")


def _safe_name(name: str) -> bool:
    """Whether a name read from a file may name an output: not empty, '.' or '..', without
    folder separators, control characters or trailing/leading spaces."""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    return (
        name not in ("", ".", "..")
        and not any(c in seps for c in name)
        and all(c.isprintable() for c in name)
        and name == name.strip()
    )


def _image_format(out: Path | None) -> str:
    """The Pillow format an image output is written in: by its suffix, PNG by default."""
    if out is None or out.suffix.lower() in ("", ".png"):
        return "PNG"
    from PIL import Image

    fmt = Image.registered_extensions().get(out.suffix.lower())
    if fmt is None or fmt == "NCD" or fmt not in Image.SAVE:
        raise Failed(f"{out}: unknown image format '{out.suffix}'")
    return fmt


def _encode_image(pixels, out: Path | None, fmt: str | None = None) -> bytes:
    from PIL import Image

    fmt = fmt or _image_format(out)
    buf = io.BytesIO()
    try:
        Image.fromarray(pixels).save(buf, format=fmt)
    except (OSError, KeyError, ValueError) as e:
        raise Failed(f"{out}: cannot write {fmt} ({e})") from None
    return buf.getvalue()


@main.command()
@click.argument("files", nargs=-1, required=True)
def info(files) -> None:
    """Describe .ncd files without decoding them."""
    from . import container

    def work(path: str) -> None:
        blob = _read_input(path)
        box = container.unpack(blob)
        h = box.header
        size = len(blob)  # the whole file, as every bpp neurocodec reports
        shape = "x".join(str(s) for s in h.shape)
        line = [f"{path}: codec {h.codec}", h.modality, "lossless" if h.lossless else "lossy", f"shape {shape}"]
        if "quality" in h.params:
            line.append(f"quality {h.params['quality']}")
        line.append(f"{len(box.chunks)} chunk(s), {size} bytes")
        if h.modality == "image" and len(h.shape) == 3 and h.shape[0] * h.shape[1]:
            line.append(f"{8 * size / (h.shape[0] * h.shape[1]):.3f} bpp")
            if h.lossless:
                line.append(f"{8 * size / (h.shape[0] * h.shape[1] * 3):.3f} bits per sub-pixel")
        elif h.modality == "text" and len(h.shape) == 1 and h.shape[0]:
            line.append(f"{8 * size / h.shape[0]:.3f} bits per byte")
        if h.name:
            line.append(f"name {h.name}")
        click.echo(_printable(", ".join(line)))  # the stored name may hold terminal escapes

    _run_each(files, work)


@main.command()
def codecs() -> None:
    """List the installed codecs."""
    from .registry import available_codecs, codec_info

    rows = [codec_info(n) for n in available_codecs()]
    if not rows:
        click.echo("no codecs installed")
        return
    click.echo(f"{'name':<16}{'modality':<10}{'kind':<10}{'size':>9}  headline")
    for r in rows:
        kind = "lossless" if r["lossless"] else "lossy"
        click.echo(f"{r['name']:<16}{r['modality']:<10}{kind:<10}{r['size_bytes'] / 1e6:>7.1f}MB  {r['headline']}")


@main.command()
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--codecs", "names", default=None,
              help="comma-separated shipped codecs and baselines [images: hyperprior,jpeg,webp,avif,jxl; "
              "--lossless: every shipped lossless image codec,png,webp-lossless,jpeg2000,jxl-lossless; "
              "text: text,gzip,bzip2,xz,zstd,brotli]")
@click.option("--lossless", is_flag=True, help="images: compare the lossless codecs (default set above)")
@click.option("--jobs", default=1, show_default=True, help="images coded at a time, each process on one torch thread")
@click.option("--out", "out_dir", default="bench/results", show_default=True, help="where tables and plots go")
@click.option("--prefix", default=None, help="file name prefix of the results (default: FOLDER's name + _lossy, _lossless or _text)")
@click.option("--limit", type=int, default=None, help="use only the first N files")
@click.option("--print-only", is_flag=True, help="print the table; write no files")
@click.option("--qualities", default=None, help="comma-separated qualities for every lossy codec (default: each codec's sweep)")
def bench(folder, names, lossless, jobs, out_dir, prefix, limit, print_only, qualities) -> None:
    """Compare codecs on a folder of images (default: ../shared/data/images/kodak) or, for a
    folder without images, of text files."""
    from .bench.command import is_text_folder, run_image_benchmark, run_text_benchmark

    codec_names = names.split(",") if names else None
    try:
        if folder and is_text_folder(Path(folder)):
            run_text_benchmark(folder, codec_names, out_dir, prefix, limit, print_only)
        else:
            run_image_benchmark(folder, codec_names, out_dir, prefix, limit, print_only, qualities, lossless, jobs)
    except NeurocodecError as e:
        _fail(str(e))
        sys.exit(1)


from .train.command import train  # noqa: E402  (one command per registered family)

main.add_command(train)


if __name__ == "__main__":  # pragma: no cover
    main()
