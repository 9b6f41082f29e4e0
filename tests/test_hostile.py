"""Hostile, damaged and odd inputs (issue 16): real files made by the shipped codecs, then
changed the way a crafted file or a faulty tool changes them, with every checksum recomputed by
the container module itself, so that only neurocodec's own checks stand between them and the
decoders."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import load
from PIL import Image

import neurocodec
from neurocodec import container, limits
from neurocodec.cli import main
from neurocodec.errors import FormatError, LimitError, NeurocodecError

SMALL = np.ascontiguousarray(load("kodim05_crop.png")[:8, :12])
TEXT = b"hostile inputs deserve clean errors. " * 4


def craft(blob: bytes, chunks: list[bytes] | None = None, **changes) -> bytes:
    """`blob` with header fields (and optionally its chunks) changed and every checksum valid:
    what a crafted file looks like. The container's reader is not used, so that files it would
    refuse can be made too. A file relabelled lossless gets a zero content digest, one
    relabelled lossy loses its digest."""
    fp = io.BytesIO(blob)
    old = container.read_header(fp)
    if chunks is None:
        chunks = []
        while (n := struct.unpack("<I", fp.read(4))[0]) != container.END_MARKER:
            chunks.append(fp.read(n))
            fp.read(4)
    digest = fp.read(8 + 1 + container.DIGEST_SIZE)[9:]
    header = dataclasses.replace(old, **changes)
    if not header.lossless:
        digest = None
    return container.pack(header, chunks, digest)


class Result:
    def __init__(self, code: int, stdout: bytes, stderr: bytes):
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


def cli(*args, stdin: bytes | None = None) -> Result:
    """The command in this process; an uncaught exception fails the test."""
    r = CliRunner().invoke(main, [str(a) for a in args], input=stdin)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout_bytes, r.stderr_bytes)


def assert_one_line_error(r: Result, *words: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurocodec: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def pixelcnn_file() -> bytes:
    return neurocodec.compress(SMALL, codec="pixelcnn")


@pytest.fixture(scope="module")
def idf_file() -> bytes:
    return neurocodec.compress(SMALL, codec="idf")


@pytest.fixture(scope="module")
def text_file() -> bytes:
    return neurocodec.compress(TEXT)


def test_craft_keeps_a_valid_file(pixelcnn_file):
    assert np.array_equal(neurocodec.decompress(craft(pixelcnn_file)), SMALL)


# --- the header must agree with the codec it names (item 4) -------------------------------


def test_lossless_file_relabelled_lossy_is_refused(pixelcnn_file, tmp_path):
    # before: the content digest was skipped and 948 of 1,024 pixels came back wrong, silently
    bad = craft(pixelcnn_file, lossless=False)
    assert container.unpack(bad).content_digest is None  # a valid lossy file as far as the container goes
    with pytest.raises(FormatError, match="says image, lossy.*pixelcnn.*lossless"):
        neurocodec.decompress(bad)
    (tmp_path / "bad.ncd").write_bytes(bad)
    assert_one_line_error(cli("decompress", tmp_path / "bad.ncd"), "bad.ncd", "lossy")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.png").exists()


def test_text_file_relabelled_image_is_refused(text_file, tmp_path):
    # before: bytes through the API, a crash in the CLI and in Pillow
    bad = craft(text_file, modality="image", shape=(1, len(TEXT), 3))
    with pytest.raises(FormatError, match="says image.*'text' is text"):
        neurocodec.decompress(bad)
    (tmp_path / "bad.ncd").write_bytes(bad)
    assert_one_line_error(cli("decompress", tmp_path / "bad.ncd"), "bad.ncd", "text")
    with Image.open(tmp_path / "bad.ncd") as im, pytest.raises(FormatError):
        im.load()


def test_image_file_relabelled_text_is_refused(pixelcnn_file):
    bad = craft(pixelcnn_file, modality="text", shape=(SMALL.size,))
    with pytest.raises(FormatError, match="says text"):
        neurocodec.decompress(bad)


# --- sizes decided from the header before any allocation (items 1-2) ------------------------


@contextlib.contextmanager
def no_decoding():
    """Fail the test if any codec's decode_chunks runs: the header alone must refuse the file."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("pixelcnn", "idf", "text"):
            codec = neurocodec.load_codec(name)
            mp.setattr(codec, "decode_chunks", lambda *a: pytest.fail("a codec ran on a refused file"))
        yield


@pytest.mark.parametrize(
    "case",
    ["idf 2^40 pixels", "pixelcnn 2^47 pixels", "16 empty chunks 4096x4096", "text 2^47 bytes", "text 16 MiB"],
)
def test_shapes_the_payload_cannot_hold_are_refused_at_once(case, pixelcnn_file, idf_file, text_file):
    # before: 3-9 GB and a raw MemoryError, or minutes of decoding garbage (16 empty chunks: 36 s)
    blob = {
        "idf 2^40 pixels": lambda: craft(idf_file, shape=(1 << 20, 1 << 20, 3)),
        "pixelcnn 2^47 pixels": lambda: craft(pixelcnn_file, shape=(1 << 23, 1 << 24, 3)),
        "16 empty chunks 4096x4096": lambda: craft(pixelcnn_file, chunks=[b""] * 16, shape=(4096, 4096, 3)),
        "text 2^47 bytes": lambda: craft(text_file, shape=(1 << 47,)),
        "text 16 MiB": lambda: craft(text_file, chunks=[b"\1" + bytes(10)], shape=(1 << 24,)),
    }[case]()
    assert len(blob) < 600
    start = time.perf_counter()
    with no_decoding(), pytest.raises(FormatError, match="claims .* more than .* bytes of coded data can hold"):
        neurocodec.decompress(blob)
    with pytest.raises(FormatError, match="can hold"):
        container.unpack(blob)  # the container layer refuses it by itself
    assert time.perf_counter() - start < 0.5


def test_text_stops_decoding_garbage_once_it_costs_more_bits_than_the_data_holds(text_file, monkeypatch):
    # a group of random bytes claiming 16,000 text bytes: allowed by the payload bound (text
    # runs of zeros really code 4 MB in 1.1 kB), it decoded all 16,000 (about 2 s) before the
    # digest refused it; now it stops after a few dozen steps of 16
    from neurocodec.families.text.codec import CODED
    from neurocodec.families.text.context_mix import ContextMixer

    steps = []
    update = ContextMixer.update
    monkeypatch.setattr(ContextMixer, "update", lambda self, *a: (steps.append(1), update(self, *a))[1])
    garbage = np.random.default_rng(0).integers(0, 256, 96, dtype=np.uint8).tobytes()
    blob = craft(text_file, chunks=[CODED + garbage], shape=(16000,))
    with pytest.raises(FormatError, match="a coded stream of 768 bits decodes to symbols of at least"):
        neurocodec.decompress(blob)
    assert 0 < len(steps) < 200  # of the 1,000 steps of 16 chunks it claims


def test_text_bound_leaves_room_for_the_most_compressible_input():
    # 98 chunks of zeros: 532 bytes since chunks start from the learned start state, which
    # expects text (about 11 bits more a chunk than the zero state); under 400 before
    zeros = bytes(100_000)
    blob = neurocodec.compress(zeros)
    assert len(blob) < 600 and neurocodec.decompress(blob) == zeros


def test_the_payload_bound_leaves_room_for_real_files():
    # an empty payload still holds a small image or text (range coders may write nothing)
    assert limits.payload_can_hold("image", (1024, 1024, 3), 0)
    assert not limits.payload_can_hold("image", (1024, 1025, 3), 0)
    assert limits.payload_can_hold("text", (0,), 0) and limits.payload_can_hold("text", (1 << 20,), 0)
    # 2000x the best ratio measured (a flat grey image at hyperprior quality 1: 496 pixels a byte)
    assert limits.payload_can_hold("image", (496 * 2000, 100, 3), 100)


def test_image_over_max_image_pixels_is_a_limit_error(pixelcnn_file, monkeypatch, tmp_path):
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 95)  # the file holds 8x12 = 96 pixels
    (tmp_path / "big.ncd").write_bytes(pixelcnn_file)
    with no_decoding():
        with pytest.raises(LimitError, match=r"8x12 \(96 pixels\), over the limit of 95 pixels.*MAX_IMAGE_PIXELS"):
            neurocodec.decompress(pixelcnn_file)
        assert_one_line_error(cli("decompress", tmp_path / "big.ncd"), "big.ncd", "NEUROCODEC_MAX_IMAGE_PIXELS")
        with pytest.raises(LimitError, match="input image"):
            neurocodec.compress(SMALL, codec="pixelcnn")
        with pytest.raises(LimitError, match="input image"):
            neurocodec.compress(Image.fromarray(SMALL), codec="pixelcnn")
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 96)
    assert np.array_equal(neurocodec.decompress(pixelcnn_file), SMALL)
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", None)  # None: no limit, as in Pillow
    assert np.array_equal(neurocodec.decompress(pixelcnn_file), SMALL)


def test_text_over_max_text_bytes_is_a_limit_error(text_file, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", len(TEXT) - 1)
    with pytest.raises(LimitError, match="MAX_TEXT_BYTES"):
        neurocodec.decompress(text_file)
    with pytest.raises(LimitError, match="input text"):
        neurocodec.compress(TEXT)
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", len(TEXT))
    assert neurocodec.decompress(text_file) == TEXT


def test_limits_from_the_environment():
    code = "from neurocodec import limits; print(limits.MAX_IMAGE_PIXELS, limits.MAX_TEXT_BYTES)"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}

    def run(**extra):
        p = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stdout.split(), p.stderr

    assert run()[0] == [str(2**28), str(2**32)]
    assert run(NEUROCODEC_MAX_IMAGE_PIXELS="1000", NEUROCODEC_MAX_TEXT_BYTES="none")[0] == ["1000", "None"]
    out, err = run(NEUROCODEC_MAX_IMAGE_PIXELS="-5")
    assert out[0] == str(2**28) and "NEUROCODEC_MAX_IMAGE_PIXELS" in err


def test_encoder_never_writes_a_file_readers_would_refuse(monkeypatch):
    monkeypatch.setattr(limits, "SAMPLES_PER_PAYLOAD_BYTE", 0)
    with pytest.raises(NeurocodecError, match="please report"):
        neurocodec.compress(SMALL[:1, :1], codec="pixelcnn")


# --- no tracebacks, one line per failed file (item 3) ----------------------------------------


@contextlib.contextmanager
def memory_cap(extra: int):
    """Let this process map at most `extra` more bytes (Linux), as a machine short of memory."""
    resource = pytest.importorskip("resource")
    try:
        status = open("/proc/self/status").read()
    except OSError:
        pytest.skip("needs /proc/self/status")
    used = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmSize:"))) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (used + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_out_of_memory_is_one_line(text_file, tmp_path, monkeypatch):
    # a valid text file whose context tables ask for 2 x 8 GiB: before, a MemoryError traceback
    # (such tables are now refused from the header: see below; the bound is lifted to run out)
    from neurocodec.families.text import context_mix

    monkeypatch.setattr(context_mix, "MAX_TABLE_BYTES", 1 << 40)
    box = container.unpack(text_file)
    context = dict(box.header.params["context"], rows_log2=24, orders=[3, 5])
    header = dataclasses.replace(box.header, params=dict(box.header.params, context=context))
    (tmp_path / "greedy.ncd").write_bytes(container.pack(header, box.chunks, box.content_digest))
    (tmp_path / "fine.ncd").write_bytes(text_file)
    neurocodec.decompress(text_file)  # everything the decode needs is loaded before the cap
    with memory_cap(2 << 30):
        r = cli("decompress", "--output-dir", tmp_path / "out", tmp_path / "greedy.ncd", tmp_path / "fine.ncd")
    line = assert_one_line_error(r, "greedy.ncd: out of memory", "8.00 GiB")
    assert "fine.ncd" not in line and (tmp_path / "out" / "fine").read_bytes() == TEXT  # the next file still runs


def test_unforeseen_exceptions_are_one_line(pixelcnn_file, tmp_path, monkeypatch):
    (tmp_path / "a.ncd").write_bytes(pixelcnn_file)
    codec = neurocodec.load_codec("pixelcnn")
    for exc in (RuntimeError("torch: bad\nshape [1, 2]"), OverflowError("int too big"), ValueError("array is too big")):
        def boom(*args, exc=exc):
            raise exc

        monkeypatch.setattr(codec, "decode_chunks", boom)
        line = assert_one_line_error(cli("decompress", "-f", tmp_path / "a.ncd"), "a.ncd", type(exc).__name__)
        assert str(exc).split()[-1] in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ncd"]


def test_error_classes():
    from neurocodec import CodecNotFound, IntegrityError, WeightsMismatch

    assert issubclass(neurocodec.FormatError, ValueError) and issubclass(neurocodec.InputError, ValueError)
    for cls in (neurocodec.FormatError, neurocodec.InputError, LimitError, CodecNotFound, IntegrityError, WeightsMismatch):
        assert issubclass(cls, NeurocodecError) and cls.__name__ in neurocodec.__all__
    with pytest.raises(ValueError):
        neurocodec.decompress(b"not a neurocodec file")


# --- output names come from the command line, not from the file (items 7, 9) ----------------


def test_stored_name_is_not_used_without_dash_n(text_file, tmp_path):
    # before: `decompress innocent.ncd` wrote .bashrc because the header said so
    (tmp_path / "innocent.ncd").write_bytes(craft(text_file, name=".bashrc"))
    assert cli("decompress", tmp_path / "innocent.ncd").returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["innocent", "innocent.ncd"]
    assert (tmp_path / "innocent").read_bytes() == TEXT
    assert cli("decompress", "-N", "--output-dir", tmp_path / "n", tmp_path / "innocent.ncd").returncode == 0
    assert os.listdir(tmp_path / "n") == [".bashrc"]  # asked for with -N, as gzip -N does


def test_renamed_image_file_is_restored_under_its_new_name(pixelcnn_file, tmp_path):
    (tmp_path / "holiday.ncd").write_bytes(craft(pixelcnn_file, name="photo.png"))
    (tmp_path / "scan.tif.ncd").write_bytes(pixelcnn_file)
    (tmp_path / "v1.2.ncd").write_bytes(pixelcnn_file)
    for f in ("holiday.ncd", "scan.tif.ncd", "v1.2.ncd"):
        assert cli("decompress", tmp_path / f).returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["holiday.ncd", "holiday.png", "scan.png", "scan.tif.ncd", "v1.2.ncd", "v1.2.png"]
    with Image.open(tmp_path / "holiday.png") as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), SMALL)
    assert cli("decompress", "-N", tmp_path / "holiday.ncd").returncode == 0
    assert (tmp_path / "photo.png").exists()


@pytest.mark.parametrize("name", [".", "..", " ", "a\\b", "evil\x1b[2J.txt", "new\nline", "\u202etxt.exe"])
def test_unsafe_stored_names_are_never_output_names(text_file, tmp_path, name):
    # before: a stored name of "." gave a traceback
    (tmp_path / "f.ncd").write_bytes(craft(text_file, name=name))
    assert_one_line_error(cli("decompress", "-N", tmp_path / "f.ncd"), "f.ncd", "not a plain file name", "without -N")
    assert os.listdir(tmp_path) == ["f.ncd"]
    assert cli("decompress", tmp_path / "f.ncd").returncode == 0  # without -N the name is not looked at
    assert sorted(os.listdir(tmp_path)) == ["f", "f.ncd"]


def test_empty_stored_name_with_dash_n_falls_back_to_the_file_name(text_file, tmp_path):
    (tmp_path / "f.ncd").write_bytes(craft(text_file, name=""))
    assert cli("decompress", "-N", tmp_path / "f.ncd").returncode == 0
    assert (tmp_path / "f").read_bytes() == TEXT


def test_info_escapes_control_characters_in_the_stored_name(text_file, tmp_path):
    (tmp_path / "f.ncd").write_bytes(craft(text_file, name="x\x1b]0;pwned\x07\x1b[2J\u202e.txt"))
    r = cli("info", tmp_path / "f.ncd")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "name x\\x1b]0;pwned\\x07\\x1b[2J\\u202e.txt" in out


# --- durability of outputs (item 8) ---------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_mode_open_would_give(text_file, tmp_path, umask):
    # before: 0600 whatever the umask
    (tmp_path / "t.ncd").write_bytes(text_file)
    old = os.umask(umask)
    try:
        assert cli("decompress", tmp_path / "t.ncd").returncode == 0
        assert cli("compress", "-c", "text", tmp_path / "t").returncode == 1  # t.ncd exists
        assert cli("compress", "-c", "text", "-o", tmp_path / "again.ncd", tmp_path / "t").returncode == 0
    finally:
        os.umask(old)
    for f in ("t", "again.ncd"):
        assert (tmp_path / f).stat().st_mode & 0o777 == 0o666 & ~umask


def test_rm_deletes_the_source_only_after_the_output_is_on_disk(tmp_path, monkeypatch):
    # before: no fsync at all, so a power cut after --rm could lose both files
    src = tmp_path / "small.png"
    Image.fromarray(SMALL).save(src)
    calls = []
    real = {name: getattr(os, name) for name in ("fsync", "replace", "unlink")}

    def spy(name):
        def call(*args, **kwargs):
            what = args[0] if name != "fsync" else os.readlink(f"/proc/self/fd/{args[0]}")
            calls.append((name, os.path.basename(str(what)) if name != "replace" else os.path.basename(str(args[1]))))
            return real[name](*args, **kwargs)
        return call

    for name in real:
        monkeypatch.setattr(os, name, spy(name))
    assert cli("compress", "-c", "pixelcnn", "--rm", src).returncode == 0
    monkeypatch.undo()
    assert not src.exists() and (tmp_path / "small.png.ncd").exists()
    names = [n for n, _ in calls]
    assert names == ["fsync", "replace", "fsync", "unlink"], calls
    assert calls[0][1].startswith(".small.png.ncd.") and calls[1][1] == "small.png.ncd"
    assert calls[2][1] == tmp_path.name and calls[3] == ("unlink", "small.png")


# --- small things (item 9) ---------------------------------------------------------------------


@pytest.fixture
def no_coding(monkeypatch):
    """Fail the test if anything is encoded or decoded."""
    fail = lambda *a, **k: pytest.fail("coded before the output was checked")  # noqa: E731
    monkeypatch.setattr(neurocodec.api, "compress", fail)
    for name in ("pixelcnn", "text"):
        monkeypatch.setattr(neurocodec.load_codec(name), "decode_container", fail)


@pytest.fixture
def small_png(tmp_path) -> str:
    Image.fromarray(SMALL).save(tmp_path / "one.png")
    return str(tmp_path / "one.png")


def test_output_in_a_missing_folder_fails_before_encoding(small_png, tmp_path, no_coding):
    # before: "one.png: No such file or directory", after the encode
    out = tmp_path / "nodir" / "x.ncd"
    assert_one_line_error(cli("compress", "-o", out, small_png), f"{out}: cannot write it: there is no folder")
    assert_one_line_error(cli("compress", "-o", tmp_path, small_png), "is a folder")


def test_existing_outputs_are_refused_before_coding(small_png, pixelcnn_file, tmp_path, no_coding):
    (tmp_path / "one.png.ncd").write_bytes(b"precious")
    assert_one_line_error(cli("compress", small_png), "one.png.ncd: already exists; use -f")
    (tmp_path / "p.ncd").write_bytes(pixelcnn_file)
    (tmp_path / "p.png").write_bytes(b"precious")
    assert_one_line_error(cli("decompress", tmp_path / "p.ncd"), "p.png: already exists")
    assert_one_line_error(cli("decompress", "-o", tmp_path / "p.xyz", tmp_path / "p.ncd"), "unknown image format")
    assert (tmp_path / "one.png.ncd").read_bytes() == (tmp_path / "p.png").read_bytes() == b"precious"


def test_image_codec_on_a_file_that_is_not_an_image(tmp_path):
    # before: "image must be uint8, got |S5968"
    (tmp_path / "notes.txt").write_bytes(TEXT)
    assert_one_line_error(cli("compress", "-c", "pixelcnn", tmp_path / "notes.txt"), "notes.txt: codec 'pixelcnn' codes images, and this is not an image file")
    with pytest.raises(neurocodec.InputError, match="codes images, and the input is bytes, not an image"):
        neurocodec.compress(TEXT, codec="pixelcnn")
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_text_codec_on_an_image_file_codes_its_bytes(small_png, tmp_path):
    assert cli("compress", "-c", "text", "-o", tmp_path / "t.ncd", small_png).returncode == 0
    assert neurocodec.decompress(tmp_path / "t.ncd") == open(small_png, "rb").read()


def test_quality_for_a_lossless_codec_is_an_error(small_png, tmp_path):
    # before: silently ignored
    assert_one_line_error(cli("compress", "--lossless", "-q", "50", small_png), "is lossless and takes no quality")
    assert_one_line_error(cli("compress", "-c", "text", "-q", "50", small_png), "codec 'text' is lossless and takes no quality")
    with pytest.raises(neurocodec.InputError, match="codec 'pixelcnn' is lossless and takes no quality"):
        neurocodec.compress(SMALL, codec="pixelcnn", quality=50)
    assert sorted(os.listdir(tmp_path)) == ["one.png"]


@pytest.mark.parametrize("quality", [True, False, np.bool_(True), 1.0, "50"])
def test_quality_must_be_a_real_integer(quality, monkeypatch):
    # before: quality=True was taken as 1 (a bare lossy Codec: the check comes before any model)
    from neurocodec.codec import Codec

    lossy = Codec.__new__(Codec)
    lossy.name, lossy.modality, lossy.lossless, lossy.default_quality = "lossy", "image", False, 50
    monkeypatch.setattr(lossy, "encode_chunks", lambda *a: pytest.fail("encoded"), raising=False)
    with pytest.raises(neurocodec.InputError, match="quality must be an integer"):
        lossy.encode(SMALL, quality=quality)


def test_bad_names_are_refused_before_encoding(monkeypatch):
    monkeypatch.setattr(neurocodec.load_codec("pixelcnn"), "encode_chunks", lambda *a: pytest.fail("encoded"))
    with pytest.raises(neurocodec.InputError, match="bare file name"):
        neurocodec.compress(SMALL, codec="pixelcnn", name="../x.png")


def test_decompress_takes_paths_and_file_objects(pixelcnn_file, tmp_path):
    # before: TypeError
    path = tmp_path / "p.ncd"
    path.write_bytes(pixelcnn_file)
    for source in (path, str(path), pixelcnn_file, bytearray(pixelcnn_file), memoryview(pixelcnn_file)):
        assert np.array_equal(neurocodec.decompress(source), SMALL)
    with open(path, "rb") as f:
        assert np.array_equal(neurocodec.decompress(f), SMALL)
    assert np.array_equal(neurocodec.decompress(io.BytesIO(pixelcnn_file)), SMALL)
    with pytest.raises(FormatError, match="trailing data"):
        neurocodec.decompress(io.BytesIO(pixelcnn_file + b"x"))
    with open(path, "r", encoding="latin-1") as f, pytest.raises(TypeError, match="binary file"):
        neurocodec.decompress(f)
    with pytest.raises(FileNotFoundError):
        neurocodec.decompress(tmp_path / "missing.ncd")
    with pytest.raises(TypeError):
        neurocodec.decompress(12)


def test_pillow_saves_ncd(tmp_path):
    # before: KeyError
    im = Image.fromarray(SMALL)
    im.save(tmp_path / "a.ncd", lossless=True)
    with Image.open(tmp_path / "a.ncd") as back:
        assert back.format == "NCD" and container.unpack((tmp_path / "a.ncd").read_bytes()).header.lossless
        assert np.array_equal(np.asarray(back), SMALL)
    im.save(tmp_path / "b.ncd", codec="pixelcnn")
    assert container.unpack((tmp_path / "b.ncd").read_bytes()).header.codec == "pixelcnn"
    with pytest.raises(neurocodec.InputError, match="alpha"):
        im.convert("RGBA").save(tmp_path / "c.ncd", codec="pixelcnn")
    with pytest.raises(neurocodec.InputError, match="lossless and takes no quality"):
        im.save(tmp_path / "d.ncd", codec="pixelcnn", quality=80)
    assert sorted(os.listdir(tmp_path)) == ["a.ncd", "b.ncd"]  # Pillow removes what a failed save began


def test_pillow_saves_ncd_lossy_by_default(tmp_path):
    Image.fromarray(SMALL).save(tmp_path / "a.ncd", quality=90)
    header = container.unpack((tmp_path / "a.ncd").read_bytes()).header
    assert not header.lossless and header.params["quality"] == 90 and header.shape == SMALL.shape


def png_bomb(height: int, width: int) -> bytes:
    """A valid 1-bit PNG of `height` x `width` black pixels: tiny on disk, huge in memory."""
    row = bytes(1 + (width + 7) // 8)
    data = zlib.compress(row * height, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_huge_png_is_one_line(tmp_path, no_coding):
    # before: a DecompressionBombError traceback
    (tmp_path / "huge.png").write_bytes(png_bomb(13400, 13400))
    assert_one_line_error(cli("compress", tmp_path / "huge.png"), "huge.png", "exceeds limit", "MAX_IMAGE_PIXELS")
    (tmp_path / "noext").write_bytes(png_bomb(13400, 13400))  # found to be an image by content
    assert_one_line_error(cli("compress", tmp_path / "noext"), "noext", "decompression bomb")
    assert sorted(os.listdir(tmp_path)) == ["huge.png", "noext"]


def test_png_over_neurocodec_limit_is_refused_before_decoding_it(tmp_path, monkeypatch, no_coding):
    (tmp_path / "big.png").write_bytes(png_bomb(3000, 4000))  # 12 M pixels
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 10_000_000)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded"))
    assert_one_line_error(cli("compress", tmp_path / "big.png"), "big.png: the image is 3000x4000 (12,000,000 pixels)", "NEUROCODEC_MAX_IMAGE_PIXELS")


# --- "lossless" that is not (item 6) -----------------------------------------------------------


def rgb16_png(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of an HxWx3 uint16 array (Pillow cannot write one)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\0" + pixels[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_16_bit_rgb_png_is_not_coded_lossless(tmp_path):
    # before: `compress --lossless` kept the top 8 bits of each sample and called that lossless
    deep = SMALL.astype(np.uint16) * 257 + np.arange(SMALL.size, dtype=np.uint16).reshape(SMALL.shape) % 7
    (tmp_path / "deep.png").write_bytes(rgb16_png(deep))
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode == "RGB"  # what Pillow makes of it
        with pytest.raises(neurocodec.InputError, match="16 bits per sample"):
            neurocodec.compress(im, lossless=True)
        from neurocodec.codec import as_rgb_image

        assert np.array_equal(as_rgb_image(im), (deep >> 8).astype(np.uint8))  # lossy: the top 8 bits
    assert_one_line_error(cli("compress", "--lossless", tmp_path / "deep.png"), "deep.png", "16 bits per sample")
    assert_one_line_error(cli("compress", "-c", "pixelcnn", tmp_path / "deep.png"), "16 bits per sample")
    assert os.listdir(tmp_path) == ["deep.png"]


@pytest.mark.parametrize("mode", ["L", "P", "1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"])
def test_lossless_codes_rgb_only(mode, tmp_path):
    # before: converted to RGB, so the image did not come back as given
    im = Image.fromarray(SMALL).convert(mode)
    with pytest.raises(neurocodec.InputError, match=f"mode {mode}, not RGB.*convert"):
        neurocodec.compress(im, codec="pixelcnn")
    from neurocodec.codec import as_rgb_image

    assert as_rgb_image(im).shape == SMALL.shape  # lossy codecs still take it, as RGB


def test_grey_png_and_2d_array_are_not_coded_lossless(tmp_path):
    grey = SMALL[:, :, 1]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert_one_line_error(cli("compress", "--lossless", tmp_path / "grey.png"), "grey.png", "mode L, not RGB")
    with pytest.raises(neurocodec.InputError, match="2-D"):
        neurocodec.compress(grey, lossless=True)
    transparent = Image.fromarray(SMALL)
    transparent.info["transparency"] = (0, 0, 0)
    with pytest.raises(neurocodec.InputError, match="transparent"):
        neurocodec.compress(transparent, codec="pixelcnn")
    rgb = np.stack([grey] * 3, axis=-1)  # what the message says to do
    assert np.array_equal(neurocodec.decompress(neurocodec.compress(rgb, lossless=True)), rgb)


@pytest.mark.parametrize("shape", [(48,), (0, 0, 3), (4, 4, 1), (4, 4, 3, 1)])
def test_image_headers_of_odd_shapes(pixelcnn_file, tmp_path, shape):
    bad = craft(pixelcnn_file, shape=shape)
    with pytest.raises(FormatError, match="HxWx3"):
        neurocodec.decompress(bad)
    (tmp_path / "odd.ncd").write_bytes(bad)
    r = cli("info", tmp_path / "odd.ncd")  # before: IndexError for a 1-D image shape
    assert r.returncode == 0 and "shape " + "x".join(map(str, shape)) in r.stdout.decode()
    with pytest.raises((OSError, FormatError)):  # Pillow: unidentified, or refused at load
        with Image.open(tmp_path / "odd.ncd") as im:
            im.load()


# --- per-codec bounds from the header, before any allocation; work bounded by the payload ----


@pytest.fixture(scope="module")
def hyperprior_file() -> bytes:
    return neurocodec.compress(SMALL, codec="hyperprior", quality=50)


@pytest.fixture(scope="module")
def bitsback_file() -> bytes:
    return neurocodec.compress(SMALL, codec="bitsback")


@pytest.fixture(scope="module")
def files(pixelcnn_file, idf_file, text_file, hyperprior_file, bitsback_file) -> dict[str, bytes]:
    return {"pixelcnn": pixelcnn_file, "idf": idf_file, "text": text_file, "hyperprior": hyperprior_file,
            "bitsback": bitsback_file}


def header_of(blob: bytes) -> container.Header:
    return container.read_header(io.BytesIO(blob))


def with_params(blob: bytes, shape=None, chunks=None, **changes) -> bytes:
    """`blob` crafted with header parameters changed (and its shape, or its chunks)."""
    old = header_of(blob)
    extra = {} if shape is None else {"shape": shape}
    return craft(blob, chunks, params=dict(old.params, **changes), **extra)


def biggest(blob: bytes, modality: str = "image") -> tuple:
    """The largest shape the container lets `blob`'s payload claim (capped at 16384x16384)."""
    box = container.unpack(blob)
    n = min(limits.SAMPLES_PER_PAYLOAD_BYTE * (sum(map(len, box.chunks)) + 1), 1 << 28)
    side = math.isqrt(n)
    return (n,) if modality == "text" else (side, side, 3)


@contextlib.contextmanager
def nothing_decoded(name: str):
    """Fail if codec `name` plans (beyond its part count) or decodes a part of a refused file."""
    codec = neurocodec.load_codec(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codec, "decode_part", lambda *a, **k: pytest.fail("a part was decoded"))
        yield codec


@pytest.mark.parametrize("name, changes", [
    ("pixelcnn", {"stripe": 1, "tile_width": 1, "group": 1}),
    ("bitsback", {"tile": 16, "tiles_per_chunk": 1}),
    ("idf", {"tile": 16}),
    ("hyperprior", {"tile": 64}),
    ("text", {"chunk": 1, "group": 1}),
])
def test_parts_are_counted_before_any_is_planned(files, name, changes):
    # before: the list of tiles was built, then compared with the chunks: 1.1-1.7 GB, 9-12 s and
    # a MemoryError for pixelcnn (16384x16384 1-pixel tiles), bitsback and idf (16-pixel tiles)
    modality = "text" if name == "text" else "image"
    blob = with_params(files[name], shape=biggest(files[name], modality), **changes)
    start = time.perf_counter()
    with nothing_decoded(name) as codec, pytest.MonkeyPatch.context() as mp:
        mp.setattr(codec, "plan", lambda *a: pytest.fail("planned"))
        with pytest.raises(FormatError, match=r"1 chunks where .* codes [\d]+ parts"):
            neurocodec.decompress(blob)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("name, shape", [
    ("pixelcnn", (1000, 1000)), ("pixelcnn", (5000, 3)), ("pixelcnn", (1, 1)), ("bitsback", (700, 900)),
    ("bitsback", (128, 129)), ("idf", (513, 2000)), ("hyperprior", (1025, 3000)), ("text", (5_000_000,)),
    ("text", (2_097_152,)), ("text", (2_097_153,)), ("text", (1,)),
])
def test_part_counts_agree_with_plans(name, shape):
    codec = neurocodec.load_codec(name)
    data = np.zeros(shape + ((3,) if len(shape) == 2 else ()), dtype=np.uint8)
    params = codec.check_params(codec.params(data, None if codec.lossless else 50))
    assert codec.count_parts(data.shape, params) == len(codec.plan(data.shape, params))


@pytest.mark.parametrize("name, changes, shape, message", [
    # before: the integer conv2d asked for 1.4-1.8 GB
    ("idf", {"tile": 8192}, (8192, 8192), r"tile is 8192, not an integer in \[16, 1024\]"),
    ("idf", {"tile": 1000}, None, "multiple of 16"),
    # before: a MemoryError (6.4 GB of symbols and canvas for one 16384x16384 tile; 1.6 GB here)
    ("pixelcnn", {"stripe": 16384, "tile_width": 16384, "group": 1}, (8192, 8192), "stripe is 16384"),
    ("pixelcnn", {"stripe": 4096, "tile_width": 4096, "group": 1}, (4096, 4096), "over 8,388,608 pixels"),
    ("pixelcnn", {"group": 10**6}, None, "group is 1000000"),
    # before: a RuntimeError from torch's allocator (4096x4096 tiles); 10^6 tiles per chunk taken
    ("bitsback", {"tile": 4096}, (4096, 4096), "tile is 4096"),
    ("bitsback", {"tiles_per_chunk": 10**6}, None, r"tiles_per_chunk is 1000000, not an integer in \[1, 512\]"),
    # before: a MemoryError
    ("hyperprior", {"tile": 16384}, (4096, 8192), "tile is 16384"),
    ("hyperprior", {"tile": 1000}, None, "multiple of 64"),
    ("hyperprior", {"quality": 0}, None, "quality is 0"),
    # before: one stream of 16 MiB, about 5 hours of decoding
    ("text", {"chunk": 1 << 24, "group": 1}, (1 << 24,), "chunk is 16777216"),
    ("text", {"chunk": 16384, "group": 1024}, None, "groups of 1024 x 16384 bytes are over 4,194,304 bytes"),
])
def test_tiles_and_groups_are_bounded_from_the_header(files, name, changes, shape, message):
    if shape is not None:
        shape = shape if name == "text" else shape + (3,)
    blob = with_params(files[name], shape=shape, **changes)
    start = time.perf_counter()
    with nothing_decoded(name), pytest.raises(FormatError, match=message):
        neurocodec.decompress(blob)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("context, message", [
    ({"rows_log2": 24, "orders": [1, 2, 3, 4]}, r"4 x 2\*\*24 rows are over 512 MiB"),  # before: 4 x 8 GiB
    ({"rows_log2": 20, "orders": [3, 5]}, r"2 x 2\*\*20 rows are over 512 MiB"),
    ({"rows_log2": 40}, r"invalid context table size"),
    ({"orders": [3, 5, 7, 2, 1]}, "invalid context orders"),
    ({"rate": 1.5}, "rate"),
    ({"match": 9}, "match length"),
    ({"match": True}, "match length"),
    ({"match": "8"}, "match length"),
    ({"confirm": 1}, "confirm and classes"),
    ({"length": 8192}, "context parameters"),
])
def test_text_context_tables_are_bounded(text_file, context, message):
    blob = with_params(text_file, context=dict(header_of(text_file).params["context"], **context))
    with nothing_decoded("text"), pytest.raises(FormatError, match=message):
        neurocodec.decompress(blob)
    # what the shipped codec asks for, and twice that, are taken
    from neurocodec.families.text.context_mix import ContextMixer

    ContextMixer.check([3, 5], 18)
    ContextMixer.check([3, 5], 19)


@pytest.mark.parametrize("name, key, value", [
    # before: pixelcnn and bitsback decoded these (int() took "1024", 4.0 and True), text took
    # its chunk as a string and its orders as strings
    ("pixelcnn", "stripe", str), ("pixelcnn", "group", float), ("pixelcnn", "group", bool),
    ("text", "chunk", str), ("text", "group", float), ("text", "orders", lambda v: [str(k) for k in v]),
    ("text", "orders", lambda v: [True] + v[1:]), ("text", "rows_log2", float), ("text", "rate", lambda v: True),
    ("hyperprior", "quality", bool), ("hyperprior", "quality", str), ("hyperprior", "tile", float),
    ("bitsback", "tiles_per_chunk", bool), ("bitsback", "tile", str), ("idf", "tile", str), ("idf", "tile", float),
])
def test_header_parameters_must_be_real_integers(files, name, key, value):
    params = header_of(files[name]).params
    if key in ("orders", "rows_log2", "rate"):
        blob = with_params(files[name], context=dict(params["context"], **{key: value(params["context"][key])}))
    else:
        blob = with_params(files[name], **{key: value(params[key])})
    with nothing_decoded(name), pytest.raises(FormatError):
        neurocodec.decompress(blob)


@pytest.mark.parametrize("name, shape, changes", [
    # before: zero bytes decode as a valid stream, of garbage, for as long as the header says:
    # 14 s here (one group of 160 chunks), 41 s in 10 chunks of 16384, and in one stream about
    # 1 ms a byte (16 MiB: 5 hours); pixelcnn 49 s; hyperprior 2 s and 1.4 GB; idf 2 s
    ("text", (16384 * 10 + 1,), {}),
    ("text", (16384 * 10 + 1,), {"chunk": 16384, "group": 16}),
    ("pixelcnn", (1024, 1024), {}),
    ("hyperprior", (1024, 1024), {}),
    ("idf", (512, 512), {}),
    ("bitsback", (512, 512), {"tiles_per_chunk": 16}),
])
def test_work_is_bounded_by_what_each_chunk_can_hold(files, name, shape, changes):
    chunk = b"\0" + bytes(8) if name == "text" else bytes(8)  # zeros: a coded stream that decodes
    shape = shape if name == "text" else shape + (3,)
    blob = with_params(files[name], shape=shape, chunks=[chunk], **changes)
    assert container.unpack(blob)  # what the container's bound over the whole payload allows
    start = time.perf_counter()
    with nothing_decoded(name), pytest.raises(FormatError, match=r"is more than its \d bytes of '\w+' data can hold"):
        neurocodec.decompress(blob)
    assert time.perf_counter() - start < 0.5


def test_the_encoder_never_writes_a_part_decoders_would_refuse(monkeypatch):
    codec = neurocodec.load_codec("text")
    monkeypatch.setattr(codec, "samples_per_chunk_byte", 1)
    with pytest.raises(NeurocodecError, match="please report"):
        neurocodec.compress(TEXT)


def test_shipped_codecs_write_what_their_bounds_take():
    """The bounds leave the shipped encoders room: the parameters they write for the largest
    inputs pass, with the margins the comments at each bound give."""
    from neurocodec.families.text import codec as text

    for name in neurocodec.available_codecs():
        codec = neurocodec.load_codec(name)
        big = np.zeros((1,), np.uint8) if codec.modality == "text" else np.zeros((1, 1, 3), np.uint8)
        codec.check_params(codec.params(big, None if codec.lossless else 100))
    params = neurocodec.load_codec("text").params(np.zeros(1 << 30, np.uint8), None)
    assert params["chunk"] * params["group"] * 2 <= text.MAX_GROUP_BYTES and params["chunk"] * 2 <= text.MAX_CHUNK


# --- fuzzing (fuzz/fuzz_decoders.py): a short run in CI ------------------------------------------


def test_stack_data_ending_in_a_zero_word_is_a_format_error(bitsback_file):
    # found by the fuzzer: constriction's ValueError ("ANS compressed data never ends in a zero
    # word") reached the user
    chunk = container.unpack(bitsback_file).chunks[0]
    with pytest.raises(FormatError, match="entropy-coded data"):
        neurocodec.decompress(craft(bitsback_file, chunks=[chunk[:-4] + bytes(4)]))


@pytest.fixture(scope="module")
def fuzzer():
    pytest.importorskip("hypothesis")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fuzz import fuzz_decoders

    # the smaller real files (every codec), decoded once; no address-space cap in pytest
    fuzz_decoders.prepare(memory_limit=None, max_bytes=1500)
    return fuzz_decoders


def test_fuzz_structured_headers_short_run(fuzzer):
    """A bounded Hypothesis run (fixed seed; at most 8 s): every input decodes or raises a
    NeurocodecError, within 10 s; the long run is documented in the README."""
    stats = fuzzer.Stats(crash_dir=None)
    fuzzer.run_hypothesis(150, stats, strict=True, budget_s=8)
    assert stats.total() >= 30 and not stats.failures()


def test_fuzz_checksum_repairing_mutator_short_run(fuzzer):
    stats = fuzzer.Stats(crash_dir=None)
    fuzzer.run_random(400, stats, seed=16, strict=True, budget_s=8)
    assert stats.total() >= 30 and not stats.failures()
    assert sum(c["decoded"] for c in stats.counts.values()) >= 1  # some inputs reach a successful decode
