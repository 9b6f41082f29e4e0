"""The `neurocodec` command as a user runs it: real processes, real files."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DATA, load
from PIL import Image

from neurocodec.cli import main

SAMPLE = DATA / "kodim23_crop.png"


class Result:
    def __init__(self, returncode: int, stdout: bytes, stderr: bytes):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run(*args, stdin: bytes | None = None) -> Result:
    """The command in this process (fast); an uncaught exception fails the test."""
    r = CliRunner().invoke(main, [str(a) for a in args], input=stdin)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout_bytes, r.stderr_bytes)


def run_process(*args, stdin: bytes | None = None) -> Result:
    """The command as its own process, exactly as a user runs it."""
    p = subprocess.run([sys.executable, "-m", "neurocodec.cli", *map(str, args)], input=stdin, capture_output=True, timeout=300)
    return Result(p.returncode, p.stdout, p.stderr)


def assert_clean_failure(proc, *words):
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurocodec: "), err
    for w in words:
        assert w in lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "photo.png").write_bytes(SAMPLE.read_bytes())
    proc = run("compress", "-q", "60", "-v", d / "photo.png")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "bpp" in proc.stderr.decode() and "dB PSNR" in proc.stderr.decode()
    return d


def test_compress_keeps_source_and_decompress_restores_png(work):
    assert (work / "photo.png").exists() and (work / "photo.png.ncd").exists()
    out = work / "restored.png"
    proc = run("decompress", "-o", out, work / "photo.png.ncd")
    assert proc.returncode == 0, proc.stderr.decode()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (256, 192)


def test_decompress_default_name_and_other_formats(tmp_path, work):
    (tmp_path / "a.ncd").write_bytes((work / "photo.png.ncd").read_bytes())
    assert run("decompress", tmp_path / "a.ncd").returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["a.ncd", "a.png"]  # the .ncd file's name, as PNG (as gzip)
    assert run("decompress", "-N", tmp_path / "a.ncd").returncode == 0
    assert (tmp_path / "photo.png").exists()  # -N: the original's name stored in the file
    assert run("decompress", "-o", tmp_path / "x.jpg", tmp_path / "a.ncd").returncode == 0
    with Image.open(tmp_path / "x.jpg") as im:
        assert im.format == "JPEG"


def test_existing_output_needs_force(work):
    proc = run("compress", work / "photo.png")
    assert_clean_failure(proc, "already exists", "-f")
    assert run("compress", "-f", "-q", "60", work / "photo.png").returncode == 0


def test_info(work):
    proc = run("info", work / "photo.png.ncd")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    default = __import__("neurocodec").registry.default_codec("image", False)  # the best measured lossy codec
    assert f"codec {default}," in out and "shape 192x256x3" in out and "quality 60" in out
    size = (work / "photo.png.ncd").stat().st_size
    assert f"{size} bytes" in out and f"{8 * size / (192 * 256):.3f} bpp" in out


def test_codecs_lists_the_shipped_codec():
    proc = run("codecs")
    assert proc.returncode == 0 and "hyperprior" in proc.stdout.decode()


def test_stdin_and_stdout_in_real_processes():
    proc = run_process("compress", "-", stdin=SAMPLE.read_bytes())
    assert proc.returncode == 0 and proc.stdout[:4] == b"\x89NCD"
    assert proc.stderr == b""  # no warnings or noise on a clean run
    back = run_process("decompress", "-", stdin=proc.stdout)
    assert back.returncode == 0 and back.stdout[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "content, words",
    [
        (b"hello, this is not a neurocodec file", ["not a neurocodec"]),
        (b"", ["not a neurocodec"]),
    ],
)
def test_bad_files_fail_cleanly(tmp_path, content, words):
    bad = tmp_path / "bad.ncd"
    bad.write_bytes(content)
    assert_clean_failure(run("decompress", bad), *words)
    assert sorted(os.listdir(tmp_path)) == ["bad.ncd"]  # nothing half-written


def test_truncated_and_corrupted_files_fail_cleanly(tmp_path, work):
    blob = (work / "photo.png.ncd").read_bytes()
    (tmp_path / "cut.ncd").write_bytes(blob[: len(blob) - 9])
    assert_clean_failure(run("decompress", tmp_path / "cut.ncd"), "truncated")
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x10
    (tmp_path / "flip.ncd").write_bytes(bytes(flipped))
    assert_clean_failure(run_process("decompress", tmp_path / "flip.ncd"), "corrupted")
    assert sorted(os.listdir(tmp_path)) == ["cut.ncd", "flip.ncd"]


def test_missing_input_and_unknown_codec(tmp_path):
    assert_clean_failure(run("compress", tmp_path / "nope.png"), "nope.png")
    assert_clean_failure(run("compress", "-c", "nosuchcodec", SAMPLE, "-o", tmp_path / "x.ncd"), "nosuchcodec")


def test_one_bad_file_among_several(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(SAMPLE.read_bytes())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    proc = run("compress", broken, good)
    assert_clean_failure(proc, "broken.png")
    assert (tmp_path / "good.png.ncd").exists() and not (tmp_path / "broken.png.ncd").exists()


def test_rm_removes_source_only_after_success(tmp_path):
    src = tmp_path / "p.png"
    src.write_bytes(SAMPLE.read_bytes())
    assert run("compress", "--rm", "-q", "30", src).returncode == 0
    assert not src.exists() and (tmp_path / "p.png.ncd").exists()
    restored = run("decompress", tmp_path / "p.png.ncd")
    assert restored.returncode == 0
    assert np.asarray(Image.open(src)).shape == load("kodim23_crop.png").shape


def test_output_dir(tmp_path):
    assert run("compress", "--output-dir", tmp_path / "enc", SAMPLE).returncode == 0
    assert (tmp_path / "enc" / "kodim23_crop.png.ncd").exists()
    assert run("decompress", "--output-dir", tmp_path / "dec", tmp_path / "enc" / "kodim23_crop.png.ncd").returncode == 0
    assert (tmp_path / "dec" / "kodim23_crop.png").exists()


def test_lossless_compress_restores_every_pixel(tmp_path):
    small = load("kodim05_crop.png")[:16, :24]
    Image.fromarray(small).save(tmp_path / "small.png")
    proc = run("compress", "--lossless", "-v", tmp_path / "small.png")
    assert proc.returncode == 0, proc.stderr.decode()
    assert "lossless" in proc.stderr.decode() and "bpsp" in proc.stderr.decode()
    info = run("info", tmp_path / "small.png.ncd").stdout.decode()
    assert "lossless" in info and "bits per sub-pixel" in info
    picked = info.split("codec ")[1].split(",")[0]  # -c auto at effort 0: one of the fast codecs, named
    fast = __import__("neurocodec").registry.auto_candidates("image", 0)
    assert proc.stderr.decode().rstrip().endswith(f"({picked})") and picked in fast and "pixelcnn" not in fast
    assert run("decompress", "-o", tmp_path / "back.png", tmp_path / "small.png.ncd").returncode == 0
    with Image.open(tmp_path / "back.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), small)


def test_info_and_import_load_neither_numpy_nor_torch(work):
    """Start-up (issue 16 item 10): commands that code nothing must not pay for torch (1.3 s)
    or numpy; `info` ran in 0.15 s and now 0.08 s on the 2-core test machine."""
    code = (
        "import sys, neurocodec, neurocodec.cli\n"
        "from click.testing import CliRunner\n"
        f"r = CliRunner().invoke(neurocodec.cli.main, ['info', {str(work / 'photo.png.ncd')!r}])\n"
        "assert r.exit_code == 0 and 'codec ' in r.output and 'lossy' in r.output, r.output\n"
        "print(sorted(m for m in ('numpy', 'torch', 'compressai') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_coding_a_photo_does_not_import_compressai(work, tmp_path):
    """Start-up (issue 16 item 10): compressai's import pulls in torch_geometric, pandas and
    scipy's datasets (2.5 s of a 1x1 image's 7 s); the lossy codecs code with their own
    layers and import it only for the encoder-side search."""
    code = (
        "import sys, neurocodec, numpy as np\n"
        "blob = neurocodec.compress(np.zeros((8, 8, 3), np.uint8))\n"
        "neurocodec.decompress(blob)\n"
        "print(neurocodec.container.unpack(blob).header.codec, 'compressai' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1] == "False", p.stdout


TEXT = (DATA / "text" / "walden_excerpt.txt").read_bytes()


def test_text_over_one_block_streams_through_stdin_stdout_and_files(tmp_path, monkeypatch):
    """Issue 15: text is coded block by block as it is read (blocks of 600 bytes here, 2 MiB
    really), to standard output or to a file, and decoded the same way."""
    from neurocodec import streaming

    monkeypatch.setattr(streaming, "BLOCK_SIZE", 600)
    data = TEXT[:1000]
    proc = run("compress", "-v", "-", stdin=data)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr.decode() == f"<stdin>: 1000 -> {len(proc.stdout)} bytes, {8 * len(proc.stdout) / 1000:.3f} bits per byte\n"
    (tmp_path / "s.ncd").write_bytes(proc.stdout)
    info = run("info", tmp_path / "s.ncd").stdout.decode()
    assert "shape 1000, stream of 2 block(s) of at most 600 bytes" in info and "bits per byte" in info
    back = run("decompress", "-", stdin=proc.stdout)
    assert back.returncode == 0 and back.stdout == data

    src = tmp_path / "book.txt"
    src.write_bytes(data)
    assert run("compress", "--rm", src).returncode == 0
    assert not src.exists()
    blob = (tmp_path / "book.txt.ncd").read_bytes()
    from_file, from_stdin = (streaming.Reader(io.BytesIO(b)) for b in (blob, proc.stdout))
    assert from_file.header.name == "book.txt" and from_stdin.header.name == ""
    assert [m.chunks for m in from_file.members()] == [m.chunks for m in from_stdin.members()]
    assert run("decompress", "-N", "--output-dir", tmp_path / "out", tmp_path / "book.txt.ncd").returncode == 0
    assert (tmp_path / "out" / "book.txt").read_bytes() == data
    cut = tmp_path / "cut.ncd"
    cut.write_bytes(blob[:-40])
    assert_clean_failure(run("decompress", cut), "truncated")
    assert not (tmp_path / "cut").exists()
    refused = run("compress", "-q", "50", "-", stdin=data)  # the text codec is lossless
    assert_clean_failure(refused, "takes no quality")
    assert refused.stdout == b""  # not even the stream's start mark


def test_progress_bar_on_a_terminal_only(monkeypatch):
    from neurocodec import cli

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def work(f):
        if f == "bad":
            raise cli.Failed("bad: broken")
        return 2_000_000

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.raises(SystemExit):
        cli._run_each(("a", "bad", "c"), work, "compress")
    shown = err.getvalue()
    assert "compress:" in shown and "/3 [" in shown and "MB/s" in shown and "file/s" in shown
    assert "neurocodec: bad: broken\n" in shown  # written above the bar, on a line of its own
    err = io.StringIO()  # not a terminal (a pipe, a log file): no bar
    monkeypatch.setattr(sys, "stderr", err)
    cli._run_each(("a", "c"), work, "compress")
    assert err.getvalue() == ""
