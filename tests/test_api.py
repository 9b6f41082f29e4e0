"""The Python interface, the Pillow plugin and the registry."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import neurocodec
from neurocodec import container, registry
from neurocodec.errors import CodecNotFound, InputError, NeurocodecError


def test_available_codecs_and_info():
    assert "hyperprior" in neurocodec.available_codecs()
    info = registry.codec_info("hyperprior")
    assert info["modality"] == "image" and info["lossless"] is False
    assert 1e6 < info["size_bytes"] < 30e6  # shipped weights stay under 30 MB


def test_compress_picks_the_image_codec_and_decompress_returns_the_array(photo):
    blob = neurocodec.compress(photo, quality=40)
    out = neurocodec.decompress(blob)
    assert isinstance(out, np.ndarray) and out.shape == photo.shape


def test_pillow_opens_ncd_images(photo, tmp_path):
    blob = neurocodec.compress(photo, quality=40)
    path = tmp_path / "p.ncd"
    path.write_bytes(blob)
    with Image.open(path) as im:
        assert im.format == "NCD" and im.size == (photo.shape[1], photo.shape[0]) and im.mode == "RGB"
        assert np.array_equal(np.asarray(im), neurocodec.decompress(blob))
    with Image.open(io.BytesIO(blob)) as im:
        im.load()


def test_unsupported_objects_and_missing_codecs(photo):
    with pytest.raises(InputError):
        neurocodec.compress(12345)
    with pytest.raises(CodecNotFound):
        neurocodec.load_codec("nosuchcodec")
    with pytest.raises(InputError, match="lossy"):
        neurocodec.compress(photo, codec="hyperprior", lossless=True)


def test_lossless_default_is_the_best_measured_codec(photo):
    scores = {}
    for name in registry.available_codecs():
        config = registry.read_config(name)
        if config["modality"] == "image" and config["lossless"]:
            scores[name] = config["kodak"]["bpsp"]  # every lossless image codec records its Kodak result
    assert len(scores) >= 1
    best = min(scores, key=scores.get)
    assert registry.default_codec("image", True) == best
    small = np.ascontiguousarray(photo[:12, :20])
    blob = neurocodec.compress(small, codec="auto", effort=1)  # every lossless codec is tried
    assert np.array_equal(neurocodec.decompress(blob), small)


def test_auto_keeps_the_smallest_file_of_the_codecs_the_effort_affords(photo):
    """Issue 14: `--lossless` without a codec (or `-c auto`) codes the image with each
    lossless codec whose recorded Kodak decode fits the effort (0: a few seconds; 1: any), each
    at its own highest level up to that effort, and keeps the smallest file."""
    x = np.ascontiguousarray(photo[:24, :40])
    for effort in (0, 1):
        names = registry.auto_candidates("image", effort)
        levels = {n: max(e for e in neurocodec.load_codec(n).efforts if e <= effort) for n in names}
        sizes = {n: len(neurocodec.compress(x, codec=n, effort=levels[n])) for n in names}
        blob = neurocodec.compress(x, lossless=True, effort=effort)
        assert len(blob) == min(sizes.values())
        assert container.unpack(blob).header.codec == min(sizes, key=sizes.get)
        assert np.array_equal(neurocodec.decompress(blob), x)
        assert neurocodec.compress(x, codec="auto", effort=effort) == blob
    fast = registry.auto_candidates("image", 0)
    assert "pixelcnn" not in fast and {"idf", "bitsback"} <= set(fast)  # 2.2 s against 22 s a Kodak image
    assert set(fast) < set(registry.auto_candidates("image", 1))
    assert registry.auto_candidates("text", 0) == ["text"]
    with pytest.raises(InputError, match="effort 0, 1, got 2"):
        neurocodec.compress(x, codec="auto", effort=2)
    with pytest.raises(InputError, match="lossless and takes no quality"):
        neurocodec.compress(x, codec="auto", quality=50)


@pytest.fixture
def extra_codecs(tmp_path, monkeypatch):
    """A second codec folder on $NEUROCODEC_CODECS, holding a copy of the shipped codec."""
    root = tmp_path / "codecs"
    shutil.copytree(registry.codec_folder("hyperprior"), root / "hp-copy")
    config = json.loads((root / "hp-copy" / registry.CONFIG).read_text())
    config["name"] = "hp-copy"
    (root / "hp-copy" / registry.CONFIG).write_text(json.dumps(config))
    monkeypatch.setenv("NEUROCODEC_CODECS", str(root))
    registry.load_codec.cache_clear()
    yield root / "hp-copy"
    registry.load_codec.cache_clear()


def test_a_codec_for_part_of_the_rates_is_never_the_default(extra_codecs):
    """A lossy codec whose -q spans only the lowest rate levels (`top_level`, as perceptual)
    or reaches below them (`bottom_level`) is not chosen as the default, whatever BD-rate it
    records: that is over other rates."""
    config = json.loads((extra_codecs / registry.CONFIG).read_text())
    config["kodak"] = {"bd_rate_jpeg": -99.0}
    (extra_codecs / registry.CONFIG).write_text(json.dumps(config))
    assert registry.default_codec("image", False) == "hp-copy"
    for part in ({"top_level": 3.0}, {"bottom_level": -2.0}):
        (extra_codecs / registry.CONFIG).write_text(json.dumps(config | part))
        assert registry.default_codec("image", False) != "hp-copy"


def test_codecs_are_found_on_the_search_path(extra_codecs, photo):
    assert "hp-copy" in neurocodec.available_codecs()
    blob = neurocodec.compress(photo[:64, :64], codec="hp-copy", quality=50)
    assert neurocodec.decompress(blob).shape == (64, 64, 3)


def test_damaged_weights_are_refused(extra_codecs):
    weights = extra_codecs / registry.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(NeurocodecError, match="damaged"):
        neurocodec.load_codec("hp-copy")
