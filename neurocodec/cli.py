"""The `neurocodec` command, in the habits of gzip and zstd.

    neurocodec compress FILE... [-c CODEC] [-q QUALITY] [-o OUT] [-f] [--rm] [--engine dask]
    neurocodec decompress FILE.ncd... [-o OUT] [-f] [--rm] [-N] [--engine dask]
    neurocodec info FILE.ncd...      neurocodec codecs
    neurocodec bench [FOLDER]        neurocodec train hyperprior|text ...

Sources are kept unless --rm is given (as zstd does; -k is accepted for gzip's habit). An
output that exists is refused without -f. Every output is written to a temporary file beside
it and renamed into place, so a failure never leaves half a file. Errors are one line on
stderr and a non-zero exit status. Text over one block (2 MiB) is coded as it is read, into a
stream of blocks (neurocodec.streaming), so memory does not grow with it; many files show a
progress bar on a terminal; --engine dask codes the files on a cluster (neurocodec.engine).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

from .errors import NeurocodecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"}


class Failed(Exception):
    """A per-file failure already worded for the user."""


_BAR = None  # the progress bar being shown, if any: messages are written above it


def _say(msg: str) -> None:
    """A line on stderr (above the progress bar, if one is shown)."""
    if _BAR is not None:
        _BAR.write(msg, file=sys.stderr)
    else:
        click.echo(msg, err=True)


def _fail(msg: str) -> None:
    _say(f"neurocodec: {msg}")


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
    with _open_input(path) as src:
        return _read(src, path)


@contextlib.contextmanager
def _open_input(path: str):
    """The binary file to read `path` from (standard input for '-', left open)."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")
    except OSError as e:
        raise Failed(f"{path}: {e.strerror or e}") from None
    with f:
        yield f


def _read(src, path: str, n: int = -1) -> bytes:
    """`n` bytes of `src` (all of it for -1), fewer only at its end."""
    try:
        if n < 0:
            return src.read()
        parts = []
        while n > 0 and (part := src.read(n)):
            parts.append(part)
            n -= len(part)
        return b"".join(parts)
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
    _emit_with(out, force, label, lambda f: f.write(data))


def _emit_with(out: Path | None, force: bool, label: str, writer) -> None:
    """Call `writer(file)` on standard output, or on a temporary file renamed to `out`."""
    if out is None:  # standard output
        if sys.stdout.isatty():
            raise Failed(f"{label}: refusing to write binary data to a terminal (use -o FILE)")
        writer(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    if out.exists() and not force:
        raise Failed(f"{out}: already exists; use -f to overwrite")
    atomic_write(out, writer=writer)


def _one_line(text: str, limit: int = 300) -> str:
    """`text` on one line (control characters escaped), cut to `limit` characters."""
    line = " ".join(_printable(str(text)).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _printable(text: str) -> str:
    """`text` with control characters (terminal escapes, newlines, ...) shown as escapes."""
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)


def _report_failure(f: str, e: Exception) -> None:
    """The one line that says why file `f` failed.

    No exception becomes a traceback: a file that makes the decoder run out of memory or fail
    inside torch is reported like any other failure (set NEUROCODEC_DEBUG=1 for tracebacks)."""
    from .engine import is_killed_worker

    label = "<stdin>" if f == "-" else f
    if isinstance(e, Failed):
        _fail(_one_line(str(e)))
    elif isinstance(e, NeurocodecError):
        _fail(_one_line(f"{label}: {e}"))
    elif isinstance(e, OSError):
        where = e.filename if e.filename not in (None, f) else label
        _fail(_one_line(f"{where}: {e.strerror or e}"))
    elif isinstance(e, MemoryError):
        _fail(_one_line(f"{label}: out of memory" + (f" ({e})" if str(e) else "")))
    elif is_killed_worker(e):
        _fail(_one_line(f"{label}: the worker coding it died (out of memory?)"))
    else:  # a bug or an unforeseen input: still one line
        if os.environ.get("NEUROCODEC_DEBUG"):
            raise e
        _fail(_one_line(f"{label}: {type(e).__name__}: {e}"))


class _Progress:
    """Files done / total and MB/s read, on stderr when it is a terminal and there are
    several files (as zstd, rsync --info=progress2 and pip show theirs), cleared at the end."""

    def __init__(self, total: int, desc: str, enabled: bool):
        global _BAR
        self.bar, self.bytes, self.start = None, 0, time.monotonic()
        if enabled and total > 1:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=desc, unit="file", disable=None, leave=False, file=sys.stderr, dynamic_ncols=True)
            if not bar.disable:
                self.bar = _BAR = bar

    def done(self, size: int | None) -> None:
        if self.bar is not None:
            self.bytes += size or 0
            rate = self.bytes / max(time.monotonic() - self.start, 1e-9) / 1e6
            self.bar.set_postfix_str(f"{rate:.2f} MB/s", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        global _BAR
        if self.bar is not None:
            self.bar.close()
            self.bar = _BAR = None


@dataclass
class _Job:
    """One file's coding, as the command sends it to a worker: `fn(data, *args)`, whose
    result `then` writes and reports here; `data` is the file's content."""

    data: bytes
    fn: Callable
    args: tuple
    then: Callable[[Any], None]


def _run_each(files: tuple[str, ...], work, desc: str = "", engine: dict | None = None, prepare=None) -> None:
    """Run `work(file)` for each file; report failures one line each; exit 1 if any failed.

    `work` returns the bytes it read, for the progress bar. With `engine` (the options of
    --engine), `prepare(file)` runs here and gives a _Job whose function runs on a worker;
    its result is then written here, file after file in the order given, so outputs, messages
    and exit status are those of the same run without an engine."""
    failed = 0
    progress = _Progress(len(files), desc, enabled=bool(desc))
    try:
        if engine is None:
            for f in files:
                try:
                    size = work(f)
                except Exception as e:  # noqa: BLE001  reported on one line
                    _report_failure(f, e)
                    failed += 1
                else:
                    progress.done(size)
        else:
            failed = _run_on_engine(files, prepare, engine, progress)
    finally:
        progress.close()
    if failed:
        sys.exit(1)


def _run_on_engine(files, prepare, engine: dict, progress: _Progress) -> int:
    """Prepare each file here, code it on the cluster, write it here; the number that failed.

    At most four files per worker are read ahead and in flight, so the client's memory holds
    a few files, however many are given."""
    from .engine import Cluster, EngineError

    failed = 0
    try:
        cluster = Cluster(engine["address"], engine["workers"]).start()
    except EngineError as e:
        _fail(_one_line(str(e)))
        sys.exit(1)
    with cluster:
        window: deque = deque()
        limit = 4 * cluster.workers

        def settle() -> int:
            f, job, future, error = window.popleft()
            try:
                if error is not None:
                    raise error
                job.then(future.result())
            except Exception as e:  # noqa: BLE001  reported on one line
                _report_failure(f, e)
                return 1
            progress.done(len(job.data))
            return 0

        for f in files:
            try:
                job = prepare(f)
                window.append((f, job, cluster.submit(job.fn, job.data, *job.args), None))
            except Exception as e:  # noqa: BLE001  reported in its turn
                window.append((f, None, None, e))
            while window and (len(window) > limit or window[0][3] is not None or window[0][2].done()):
                failed += settle()
        while window:
            failed += settle()
    return failed


def _engine_options(command):
    """--engine, --address and --workers, for commands that code many files."""
    command = click.option("--workers", type=click.IntRange(1), default=None,
                           help="worker processes of the local cluster (default: one per core)")(command)
    command = click.option("--address", default=None, metavar="ADDRESS",
                           help="scheduler of an existing dask cluster, e.g. tcp://host:8786 (default: start a local one)")(command)
    command = click.option("--engine", type=click.Choice(["dask"]), default=None,
                           help="code the files on a dask.distributed cluster (pip install 'neurocodec[cluster]')")(command)
    return command


def _engine(engine: str | None, address: str | None, workers: int | None) -> dict | None:
    if engine is None:
        if address is not None or workers is not None:
            raise click.UsageError("--address and --workers go with --engine dask")
        return None
    if address is not None and workers is not None:
        raise click.UsageError("--workers sizes the local cluster; an existing one (--address) has its own")
    return {"address": address, "workers": workers}


def _check_output_option(files: tuple[str, ...], output: str | None) -> None:
    if output is not None and len(files) > 1:
        raise click.UsageError("-o names one output; give one input file with it")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurocodec")
def main() -> None:
    """Learned compression of images and text."""


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("-c", "--codec", help="codec name (see `neurocodec codecs`), or 'auto': the smallest file of the "
              "lossless codecs the effort affords; default: by file type")
@click.option("-q", "--quality", type=click.IntRange(1, 100), help="quality 1..100 for lossy codecs")
@click.option("--lossless", is_flag=True, help="lossless, as -c auto unless a codec is named")
@click.option("-e", "--effort", type=click.IntRange(0, 9), default=0, show_default=True,
              help="encoder-side search, as cjxl -e: higher encodes slower and smaller at the same quality, "
              "decodes the same (context, hyperprior: 0-4; bitsback, auto: 0-1; a codec without a level refuses it)")
@click.option("-o", "--output", help="output file ('-' for standard output)")
@click.option("--output-dir", type=click.Path(file_okay=False), help="write outputs into this folder")
@click.option("-f", "--force", is_flag=True, help="overwrite existing outputs")
@click.option("-k", "--keep", is_flag=True, help="keep source files (the default)")
@click.option("--rm", "remove", is_flag=True, help="remove each source file after success")
@click.option("-v", "--verbose", is_flag=True, help="report size, and for images bpp and the PSNR really achieved")
@_engine_options
def compress(files, codec, quality, lossless, effort, output, output_dir, force, keep, remove, verbose, engine, address, workers) -> None:
    """Compress FILES to FILE.ncd ('-' reads standard input).

    Text over one block (2 MiB) is coded block by block as it is read, in memory that does not
    grow with it. With --engine dask, the files are coded on a cluster's workers (a local
    one by default) and written here, as without it."""
    from . import streaming

    _check_output_option(files, output)
    cluster = _engine(engine, address, workers)
    block = streaming.BLOCK_SIZE

    def start(path: str):
        """Name and check the output, before any reading or coding."""
        label = "<stdin>" if path == "-" else path
        name = "" if path == "-" else Path(path).name
        out = _output_path(output, output_dir, path, lambda p: p.with_name(p.name + ".ncd"))
        _check_output(out, force, label)
        return label, name, out

    def finish(path: str, label: str, out: Path | None, result) -> None:
        blob, report = result
        _emit(out, blob, force, label)
        if report is not None:
            _say(f"{label}: {report}")
        if remove and path != "-" and out is not None:
            os.unlink(path)

    def work(path: str) -> int:
        label, name, out = start(path)
        with _open_input(path) as src:
            data = _read(src, path, block + 1)
            if len(data) > block and _modality(path, data, label, codec) == "text":
                counts = []  # a text over one block: coded as it is read, written as it is coded
                _emit_with(out, force, label, lambda f: counts.append(
                    _compress_stream(src, f, data, path, codec, quality, lossless, effort, name, block)))
                if verbose:
                    _say(f"{label}: {_size_report(*counts[0])}")
                if remove and path != "-" and out is not None:
                    os.unlink(path)
                return counts[0][0]
            data += _read(src, path)
        finish(path, label, out, _compress_file(data, path, label, codec, quality, lossless, effort, name, verbose, block))
        return len(data)

    def prepare(path: str) -> _Job:
        label, name, out = start(path)
        return _Job(_read_input(path), _compress_file, (path, label, codec, quality, lossless, effort, name, verbose, block),
                    lambda result: finish(path, label, out, result))

    _run_each(files, work, "compress", cluster, prepare)


def _compress_file(data: bytes, path: str, label: str, codec: str | None, quality: int | None, lossless: bool,
                   effort: int, name: str, verbose: bool, block: int) -> tuple[bytes, str | None]:
    """What `compress` writes for one file's `data`, and its -v report. It reads and writes no
    file: it runs here, or on a worker with --engine. A text over one block gives the same
    stream as `_compress_stream`."""
    from . import api, container, streaming

    obj = _compress_input(path, data, label, codec)
    if isinstance(obj, bytes) and len(obj) > block:
        blob = streaming.compress_bytes(obj, codec, quality, lossless=lossless, name=name, block_size=block, effort=effort)
    else:
        blob = api.compress(obj, codec=codec, quality=quality, lossless=lossless, name=name, effort=effort)
    report = _report(obj, blob) if verbose else None
    if report and api.picks_per_input(codec, lossless):  # say which codec it picked
        report += f" ({container.read_header(io.BytesIO(blob)).codec})"
    return blob, report


def _compress_stream(src, out, head: bytes, path: str, codec: str | None, quality: int | None, lossless: bool,
                     effort: int, name: str, block: int) -> tuple[int, int]:
    """Code `head` and the rest of `src` into `out` as a stream, one block at a time; the
    bytes read and written."""
    from . import streaming

    with streaming.Writer(out, codec, quality, lossless=lossless, name=name, block_size=block, effort=effort) as w:
        w.write(head)
        while part := _read(src, path, block):
            w.write(part)
    return w.bytes_in, w.bytes_out


def _modality(path: str, data: bytes, label: str, codec: str | None) -> str:
    """What `compress` codes a file as: "image" for image files (or an image codec), "text"
    (the bytes themselves) otherwise, and always for a text codec, whatever the file holds.
    `data` may be the file's first bytes only."""
    from .api import AUTO

    modality = None
    if codec is not None and codec != AUTO:
        from .registry import read_config

        modality = read_config(codec).get("modality")
    if modality == "text":
        return "text"
    if _is_image(path, data):
        return "image"
    if modality == "image":
        raise Failed(f"{label}: codec '{codec}' codes images, and this is not an image file (PNG, JPEG, WebP, ...)")
    return "text"


def _compress_input(path: str, data: bytes, label: str, codec: str | None):
    """What `compress` codes: a Pillow image for image files (or an image codec), the bytes
    themselves otherwise (and always for a text codec, whatever the file holds)."""
    return _load_image(data, label) if _modality(path, data, label, codec) == "image" else data


def _size_report(n_in: int, n_out: int) -> str:
    return f"{n_in} -> {n_out} bytes, {8 * n_out / max(n_in, 1):.3f} bits per byte"


def _report(obj, blob: bytes) -> str:
    """Size and, for images, bits per pixel and the PSNR of the real decoded file."""
    from . import api

    if isinstance(obj, bytes):
        return _size_report(len(obj), len(blob))
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
@_engine_options
def decompress(files, output, output_dir, force, keep, remove, use_name, engine, address, workers) -> None:
    """Restore FILE.ncd: images as PNG (unless -o names another format), bytes as they were.

    The output is FILE.ncd without .ncd (images: with .png for any image suffix), beside it or
    in --output-dir; -N uses the original's name stored in the file instead. A stream (text
    over one block) is decoded block by block as it is read. With --engine dask, the files
    are decoded on a cluster's workers (a local one by default) and written here."""
    from . import streaming

    _check_output_option(files, output)
    cluster = _engine(engine, address, workers)

    def start(path: str, reader):
        """Name and check the output from the header, before the (slow) decode."""
        label = "<stdin>" if path == "-" else path
        h = reader.header
        out = _output_path(output, output_dir, path, lambda p: _restored_name(p, h, use_name))
        _check_output(out, force, label)
        return label, out, (_image_format(out) if h.modality == "image" else None)

    def finish(path: str, label: str, out: Path | None, data: bytes) -> None:
        _emit(out, data, force, label)
        if remove and path != "-" and out is not None:
            os.unlink(path)

    def work(path: str) -> int:
        with _open_input(path) as src:
            reader = streaming.Reader(_Counting(src))  # a plain file is read whole, a stream's start mark only
            label, out, fmt = start(path, reader)
            if reader.stream:
                _emit_with(out, force, label, lambda f: f.writelines(reader.blocks()))
                if remove and path != "-" and out is not None:
                    os.unlink(path)
                return reader.fp.count
        finish(path, label, out, _decoded(reader.container, out, fmt))
        return reader.fp.count

    def prepare(path: str) -> _Job:
        blob = _read_input(path)
        label, out, fmt = start(path, streaming.Reader(io.BytesIO(blob)))
        return _Job(blob, _decompress_file, (out, fmt), lambda data: finish(path, label, out, data))

    _run_each(files, work, "decompress", cluster, prepare)


class _Counting:
    """A binary file that counts the bytes read from it."""

    def __init__(self, fp):
        self.fp, self.count = fp, 0

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        self.count += len(data)
        return data


def _decompress_file(blob: bytes, out: Path | None, fmt: str | None) -> bytes:
    """What `decompress` writes for one .ncd file or stream `blob`. It reads and writes no
    file: it runs here, or on a worker with --engine."""
    from . import streaming

    reader = streaming.Reader(io.BytesIO(blob))
    if reader.stream:
        return b"".join(reader.blocks())
    return _decoded(reader.container, out, fmt)


def _decoded(box, out: Path | None, fmt: str | None) -> bytes:
    """The output file's content for a plain .ncd file: the image in `fmt`, or the bytes."""
    from . import api

    result = api.decode_container(box)
    return _encode_image(result, out, fmt) if box.header.modality == "image" else bytes(result)


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
    """Describe .ncd files and streams without decoding them."""
    import dataclasses

    from . import streaming

    def work(path: str) -> None:
        with _open_input(path) as src:
            reader = streaming.Reader(_Counting(src))
            h = reader.header
            chunks = blocks = length = 0
            for box in reader.members():  # a stream's blocks are read and checked, not decoded
                chunks += len(box.chunks)
                blocks += 1
                length += box.header.shape[0] if reader.stream else 0
            size = reader.fp.count  # the whole file, as every bpp neurocodec reports
        shape = str(length) if reader.stream else "x".join(str(s) for s in h.shape)
        line = [f"{path}: codec {h.codec}", h.modality, "lossless" if h.lossless else "lossy", f"shape {shape}"]
        if "quality" in h.params:
            line.append(f"quality {h.params['quality']}")
        if reader.stream:
            line.append(f"stream of {blocks} block(s) of at most {reader.block} bytes")
            h = dataclasses.replace(h, shape=(length,))
        line.append(f"{chunks} chunk(s), {size} bytes")
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
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="write the vectors as an N x D float32 .npy array (rows in the order given) instead of printing them")
@click.option("-f", "--force", is_flag=True, help="overwrite the output")
def embed(files, output, force) -> None:
    """Print each image's feature vector (neurocodec.features): a line per file, its name, a
    tab and the numbers. A .ncd image is embedded from its coded latent where its codec has a
    head for it (vq: no pixels are decoded), else decoded first. Cosine similarity (the dot
    product) finds near copies."""
    import numpy as np

    from . import container
    from .errors import InputError
    from .perceptual import features
    from .perceptual.latent import embed_file

    out = Path(output) if output else None
    if out is not None:
        _check_output(out, force, out.name)
    rows = []

    def work(path: str) -> int:
        data = _read_input(path)
        label = "<stdin>" if path == "-" else path
        if container.is_ncd(data):
            try:
                v = embed_file(data)
            except InputError:
                raise Failed(f"{label}: holds text, not an image") from None
        elif _is_image(path, data):
            v = features(_load_image(data, label))
        else:
            raise Failed(f"{label}: neither an image nor a .ncd file")
        rows.append(v)
        if out is None:
            click.echo(_printable(label) + "\t" + " ".join(f"{x:.6g}" for x in v))
        return len(data)

    try:
        _run_each(files, work)
    finally:
        if out is not None and len(rows) == len(files):  # only a complete array is written
            atomic_write(out, writer=lambda f: np.save(f, np.stack(rows)))


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
              help="comma-separated shipped codecs (NAME@E: at encoder effort E) and baselines [images: every shipped lossy image codec,jpeg,webp,avif,jxl; "
              "--lossless: every shipped lossless image codec,png,webp-lossless,jpeg2000,jxl-lossless-e7,jxl-lossless; "
              "text: text,gzip,bzip2,xz,zstd,brotli]")
@click.option("--lossless", is_flag=True, help="images: compare the lossless codecs (default set above)")
@click.option("--jobs", default=1, show_default=True, help="images coded at a time, each process on one torch thread")
@click.option("--out", "out_dir", default="bench/results", show_default=True, help="where tables and plots go")
@click.option("--prefix", default=None, help="file name prefix of the results (default: FOLDER's name + _lossy, _lossless or _text)")
@click.option("--limit", type=int, default=None, help="use only the first N files")
@click.option("--print-only", is_flag=True, help="print the table; write no files")
@click.option("--qualities", default=None, help="comma-separated qualities for every lossy codec (default: each codec's sweep)")
@_engine_options
def bench(folder, names, lossless, jobs, out_dir, prefix, limit, print_only, qualities, engine, address, workers) -> None:
    """Compare codecs on a folder of images (default: ../shared/data/images/kodak) or, for a
    folder without images, of text files. With --engine dask, images are benchmarked one per
    task on a cluster's workers (which must see the folder at the same path)."""
    from .bench.command import is_text_folder, run_image_benchmark, run_text_benchmark

    codec_names = names.split(",") if names else None
    cluster = _engine(engine, address, workers)
    if cluster is not None and jobs != 1:
        raise click.UsageError("--jobs runs processes here; with --engine, the cluster's workers code the images")
    try:
        if folder and is_text_folder(Path(folder)):
            if cluster is not None:
                raise click.UsageError("--engine is for folders of images; the text benchmark runs here")
            run_text_benchmark(folder, codec_names, out_dir, prefix, limit, print_only)
        else:
            run_image_benchmark(folder, codec_names, out_dir, prefix, limit, print_only, qualities, lossless, jobs,
                                cluster)
    except NeurocodecError as e:
        _fail(str(e))
        sys.exit(1)


from .train.command import train  # noqa: E402  (one command per registered family)

main.add_command(train)


if __name__ == "__main__":  # pragma: no cover
    # `python -m neurocodec.cli`: run the commands of the module `neurocodec.cli`, not of this
    # copy named __main__, so that the functions --engine sends to workers are found there by
    # name, and their exceptions are the classes the commands catch
    from neurocodec.cli import main as _main

    _main()
