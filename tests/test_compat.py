"""Files written by earlier releases keep decoding: every fixture in tests/data/compat (made by
tests/make_compat.py, never rewritten) decodes to its recorded output, lossless files bit for
bit, lossy ones within one level per sub-pixel (a float synthesis may round differently)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import neurocodec

COMPAT = Path(__file__).parent / "data" / "compat"
MANIFEST = json.loads((COMPAT / "manifest.json").read_text())


def test_every_shipped_codec_has_fixtures():
    assert set(neurocodec.available_codecs()) <= {m["codec"] for m in MANIFEST}


@pytest.mark.parametrize("entry", MANIFEST, ids=[m["file"] for m in MANIFEST])
def test_fixture_decodes_as_recorded(entry):
    out = neurocodec.decompress((COMPAT / entry["file"]).read_bytes())
    expected_path = COMPAT / entry["expected"]
    if expected_path.suffix == ".txt":
        assert out == expected_path.read_bytes()
        return
    with Image.open(expected_path) as im:
        expected = np.asarray(im.convert("RGB"))
    assert out.shape == expected.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(np.int16) - expected)
    if entry["lossless"]:
        assert diff.max() == 0
    else:
        assert diff.max() <= 1


CURRENT = [m for m in MANIFEST if m["codec"] in neurocodec.available_codecs()
           and neurocodec.load_codec(m["codec"]).weights_digest.hex().startswith(m["file"].split("-")[1])]


@pytest.mark.parametrize("entry", CURRENT, ids=[m["file"] for m in CURRENT])
def test_encoding_reproduces_the_fixture(entry):
    """With the weights a fixture was made with, encoding its input gives the same bytes: the
    bitstream did not change."""
    from make_compat import encode, format_suffix, load_input

    codec = neurocodec.load_codec(entry["codec"])
    blob = encode(codec, load_input(entry["input"]), entry["input"], entry.get("quality"))
    old_blob = (COMPAT / entry["file"]).read_bytes()
    # the symbols digest is checked below; the container version does not touch the chunks
    variant = lambda b: format_suffix(b).replace("-sym", "").replace("-v2", "")  # noqa: E731
    if variant(blob) != variant(old_blob):
        pytest.skip("an earlier coding variant of the same weights: test_fixture_decodes_as_recorded covers it")
    new, old = neurocodec.container.unpack(blob), neurocodec.container.unpack(old_blob)
    assert new.chunks == old.chunks and new.content_digest == old.content_digest
    # since 0.1.0+symbols, lossy headers add a digest of the coded symbols; nothing else changed
    assert {k: v for k, v in new.header.params.items() if k not in old.header.params} in ({}, {"symbols": new.header.params.get("symbols")})
    assert {k: v for k, v in new.header.params.items() if k in old.header.params} == old.header.params


def test_files_of_replaced_weights_still_decode(tmp_path, monkeypatch):
    """Shipping new weights moves the old ones to retired/<digest>/, and files written with
    them decode with them."""
    from safetensors.torch import load_file

    from neurocodec import registry
    from neurocodec.errors import WeightsMismatch

    src = registry.codec_folder("idf")
    config = registry.read_config("idf")
    weights = load_file(str(src / registry.WEIGHTS))
    folder = tmp_path / "codecs" / "idf2"
    registry.write_codec_folder(folder, dict(config, name="idf2"), weights)
    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        img = np.ascontiguousarray(np.asarray(Image.open(Path(__file__).parent / "data" / "kodim05_crop.png"))[:20, :30, :3])
        old_file = neurocodec.compress(img, codec="idf2")
        weights = {k: v * 1.001 if v.is_floating_point() else v for k, v in weights.items()}
        registry.write_codec_folder(folder, dict(config, name="idf2"), weights)  # new weights ship
        assert neurocodec.load_codec("idf2").weights_digest != neurocodec.container.unpack(old_file).header.weights_digest
        assert np.array_equal(neurocodec.decompress(old_file), img)
        import shutil

        shutil.rmtree(folder / registry.RETIRED)
        registry.load_codec.cache_clear()
        with pytest.raises(WeightsMismatch):
            neurocodec.decompress(old_file)
    finally:
        registry.load_codec.cache_clear()
