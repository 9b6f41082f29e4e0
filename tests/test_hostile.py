"""Hostile, damaged and odd inputs (issue 16): real files made by the shipped codecs, then
changed the way a crafted file or a faulty tool changes them, with every checksum recomputed by
the container module itself, so that only neurocodec's own checks stand between them and the
decoders."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import load
from PIL import Image

import neurocodec
from neurocodec import container
from neurocodec.cli import main
from neurocodec.errors import FormatError

SMALL = np.ascontiguousarray(load("kodim05_crop.png")[:8, :12])
TEXT = b"hostile inputs deserve clean errors. " * 4


def craft(blob: bytes, **changes) -> bytes:
    """`blob` with header fields changed and every checksum valid: what a crafted file looks like.

    A file relabelled lossless gets a zero content digest, one relabelled lossy loses its digest."""
    box = container.unpack(blob)
    header = dataclasses.replace(box.header, **changes)
    digest = (box.content_digest or bytes(container.DIGEST_SIZE)) if header.lossless else None
    return container.pack(header, box.chunks, digest)


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
