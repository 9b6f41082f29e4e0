import math
from pathlib import Path

import numpy as np
import pytest

from neurocodec.bench import baselines, images, metrics

CROP = Path(__file__).parent / "data" / "kodim23_crop.png"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return images.load_image(CROP)


@pytest.mark.parametrize("name", baselines.LOSSLESS)
def test_lossless_baselines_round_trip_exactly(photo, name):
    codec = baselines.get_baseline(name)
    assert codec.lossless and codec.modality == "image"
    blob = codec.encode(photo)
    out = codec.decode(blob)
    assert out.dtype == np.uint8 and np.array_equal(out, photo)
    assert len(blob) < photo.nbytes


@pytest.mark.parametrize("name", baselines.LOSSY)
def test_lossy_baselines_sweep(photo, name):
    codec = baselines.get_baseline(name)
    assert not codec.lossless and 7 <= len(codec.bench_qualities) <= 9
    rates = []
    for q in sorted(codec.bench_qualities):
        blob = codec.encode(photo, quality=q)
        out = codec.decode(blob)
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert metrics.psnr(photo, out) > 20
        rates.append(metrics.bpp(len(blob), photo))
    assert rates == sorted(rates) and rates[0] < rates[-1]


def test_unknown_or_missing_baseline(photo, monkeypatch):
    with pytest.raises(KeyError, match="unknown baseline"):
        baselines.get_baseline("bmp")
    imagecodecs = pytest.importorskip("imagecodecs")
    monkeypatch.setattr(imagecodecs, "JPEGXL", type("JPEGXL", (), {"available": False}))
    codec = baselines.get_baseline("jxl")  # made fine, fails only when used
    with pytest.raises(RuntimeError, match="built without jpegxl_encode"):
        codec.encode(photo, quality=50)


def test_psnr_known_values():
    a = np.zeros((4, 4, 3), np.uint8)
    assert metrics.psnr(a, a) == math.inf
    b = a.copy()
    b[..., 0] = 3  # mse = 9 * 16 / 48 = 3
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 3))
    assert metrics.psnr(a, np.full_like(a, 255)) == pytest.approx(0)


def test_ms_ssim(photo):
    assert metrics.ms_ssim(photo, photo) == pytest.approx(1.0, abs=1e-5)
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 8, photo.shape), 0, 255).astype(np.uint8)
    assert 0.8 < metrics.ms_ssim(photo, noisy) < 1.0
    assert math.isnan(metrics.ms_ssim(photo[:160], photo[:160]))


def test_bpp():
    assert metrics.bpp(96, np.zeros((16, 48, 3), np.uint8)) == 1.0


def test_bd_rate_known_answers():
    rate = np.array([0.1, 0.25, 0.5, 1.0, 2.0])
    quality = np.array([28.0, 31.5, 34.2, 37.0, 40.1])
    assert metrics.bd_rate(rate, quality, rate, quality) == pytest.approx(0, abs=1e-9)
    assert metrics.bd_rate(rate, quality, 0.8 * rate, quality) == pytest.approx(-20)
    assert metrics.bd_rate(0.8 * rate, quality, rate, quality) == pytest.approx(25)
    # B's curve has its own PSNR points: log-rate linear in PSNR makes the fit exact
    q_b = np.array([30.0, 33.0, 36.0, 39.0, 42.0])
    rate_of = lambda q: np.exp(0.2 * q - 7)  # noqa: E731
    assert metrics.bd_rate(rate_of(quality), quality, 1.1 * rate_of(q_b), q_b) == pytest.approx(10)
    assert math.isnan(metrics.bd_rate(rate, quality, rate, quality + 20))


def test_run_summarize_write(tmp_path):
    codecs = [baselines.get_baseline("jpeg"), baselines.get_baseline("webp"), "png"]
    rows = images.run([CROP], codecs, progress=False)
    assert len(rows) == 9 + 9 + 1
    png = rows[-1]
    assert png["exact"] and png["psnr"] == math.inf and png["bpsp"] == pytest.approx(png["bpp"] / 3)

    again = images.run([CROP], ["png", "jpeg"], progress=False, qualities=[40, 60])
    assert [(r["codec"], r["quality"]) for r in again] == [("png", None), ("jpeg", 40), ("jpeg", 60)]
    summary = images.summarize(rows + again[:1])
    assert len(summary) == 19 and summary[-1]["images"] == 2
    rates = images.bd_rates(summary)
    assert rates["jpeg"] == pytest.approx(0) and math.isfinite(rates["webp"])

    text = images.format_table(summary)
    assert "PSNR dB" in text and "bpsp" in text and "webp" in text

    paths = images.write_results(rows, summary, tmp_path, "test crop", prefix="crop")
    names = sorted(p.name for p in paths)
    assert names == ["crop.csv", "crop_bpsp.png", "crop_rd.png", "crop_summary.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    md = (tmp_path / "crop_summary.md").read_text()
    assert "BD-rate against jpeg" in md and "| png |" in md
    assert len((tmp_path / "crop.csv").read_text().splitlines()) == len(rows) + 1


class _Raw:
    """A stand-in for a neurocodec codec: no sweep of its own, so run() codes once."""

    name, modality, lossless, bench_qualities = "raw", "image", True, ()

    def encode(self, img, quality=None):
        assert quality is None
        return np.array(img.shape[:2], np.uint32).tobytes() + img.tobytes()

    def decode(self, blob):
        h, w = np.frombuffer(blob[:8], np.uint32)
        return np.frombuffer(blob[8:], np.uint8).reshape(h, w, 3)


def test_run_takes_codec_objects_and_refuses_text():
    (row,) = images.run([CROP], [_Raw()], progress=False)
    assert row["quality"] is None and row["exact"] and row["bytes"] == 192 * 256 * 3 + 8
    assert row["bpsp"] == pytest.approx(8 * row["bytes"] / (192 * 256 * 3))

    text = _Raw()
    text.modality = "text"
    with pytest.raises(ValueError, match="codes text"):
        images.run([CROP], [text], progress=False)


def test_text_benchmark_writes_real_sizes(tmp_path):
    """Text mode: the learned codec and the five classic compressors on a real text file."""
    from click.testing import CliRunner

    from neurocodec.bench import text
    from neurocodec.cli import main

    folder = Path(__file__).parent / "data" / "text"
    result = CliRunner().invoke(main, ["bench", str(folder), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "text_text_summary.md").read_text()
    rows = list(__import__("csv").DictReader(open(tmp_path / "text_text.csv")))
    assert {r["codec"] for r in rows} == set(text.DEFAULT_CODECS)
    data = (folder / "walden_excerpt.txt").read_bytes()
    import gzip

    gz = next(r for r in rows if r["codec"] == "gzip")
    assert int(gz["bytes_out"]) == len(gzip.compress(data, 9, mtime=0))  # sizes are the real outputs
    learned = next(r for r in rows if r["codec"] == "text")
    assert float(learned["bpb"]) < float(gz["bpb"])
    assert "| text |" in summary


def test_a_codec_at_an_effort_is_benchmarked_under_its_own_name():
    """`--codecs bitsback@1`: the shipped codec encoding at effort 1, a row of its own."""
    from neurocodec.bench.command import resolve
    from neurocodec.errors import InputError

    at = resolve("bitsback@1")
    (row,) = images.run([CROP], [at], progress=False)
    assert row["codec"] == "bitsback@1" and row["exact"]
    for bad in ("bitsback@2", "bitsback@x", "png@1", "nosuch@1"):
        with pytest.raises(InputError):
            resolve(bad)
