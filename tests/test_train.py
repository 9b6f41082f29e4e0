"""`neurocodec train FAMILY` resumes from the shipped weights and exports a codec folder
that the registry loads and that codes real images."""

import json

import pytest
from click.testing import CliRunner
from conftest import DATA, psnr

import neurocodec
from neurocodec import registry
from neurocodec.cli import main


def test_resume_train_export(tmp_path, monkeypatch, photo):
    out, folder = tmp_path / "run", tmp_path / "codecs" / "hp-tuned"
    result = CliRunner().invoke(
        main,
        ["train", "hyperprior", "--data", str(DATA), "--minutes", "0.03", "--out", str(out),
         "--resume", "hyperprior", "--export", str(folder), "--name", "hp-tuned", "--batch", "2", "--crop", "64"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    shipped = registry.read_config("hyperprior")
    assert config["training"]["steps"] > shipped["training"]["steps"]  # it went on from there

    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        blob = neurocodec.compress(photo, codec="hp-tuned", quality=60)
        assert psnr(neurocodec.decompress(blob), photo) > 24  # a few steps keep it a working codec
    finally:
        registry.load_codec.cache_clear()


def test_text_resume_from_shipped_codec_train_export(tmp_path, monkeypatch):
    """`train text --resume text` starts from the shipped integer weights (turned back into an
    equivalent float network) and exports a codec that still compresses real text."""
    from neurocodec.families.text.codec import float_net
    from neurocodec.families.text.spec import evaluate

    shipped = neurocodec.load_codec("text")
    text = (DATA / "text" / "walden_excerpt.txt").read_bytes()
    start_bpb = evaluate(float_net(shipped._weights), [text])
    out, folder = tmp_path / "run", tmp_path / "codecs" / "text-tuned"
    result = CliRunner().invoke(
        main,
        ["train", "text", "--data", str(DATA / "text"), "--minutes", "0.02", "--out", str(out),
         "--resume", "text", "--export", str(folder), "--name", "text-tuned", "--batch", "4", "--seq", "64", "--lr", "1e-5"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["training"]["steps"] > registry.read_config("text")["training"]["steps"]

    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        tuned = neurocodec.load_codec("text-tuned")
        assert abs(evaluate(float_net(tuned._weights), [text]) - start_bpb) < 0.05  # a tiny lr: the same model
        blob = neurocodec.compress(text[:1500], codec="text-tuned")
        assert neurocodec.decompress(blob) == text[:1500]
    finally:
        registry.load_codec.cache_clear()


def test_pixelcnn_resume_train_export(tmp_path, monkeypatch, photo):
    """`train pixelcnn --resume pixelcnn` goes on from the shipped weights and exports a codec
    that still codes real pixels losslessly, at about the same rate (a tiny learning rate)."""
    out, folder = tmp_path / "run", tmp_path / "codecs" / "pc-tuned"
    result = CliRunner().invoke(
        main,
        ["train", "pixelcnn", "--data", str(DATA), "--minutes", "0.02", "--out", str(out), "--resume", "pixelcnn",
         "--export", str(folder), "--name", "pc-tuned", "--batch", "2", "--crop", "32", "--lr", "1e-7"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["training"]["steps"] > registry.read_config("pixelcnn")["training"]["steps"]

    crop = photo[60:72, 80:96].copy()
    shipped = len(neurocodec.compress(crop, codec="pixelcnn"))
    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        blob = neurocodec.compress(crop, codec="pc-tuned")
        assert (neurocodec.decompress(blob) == crop).all()
        assert abs(len(blob) - shipped) <= 0.02 * shipped + 4
    finally:
        registry.load_codec.cache_clear()


@pytest.mark.parametrize("family", ["idf", "bitsback"])
def test_lossless_resume_train_export(tmp_path, monkeypatch, photo, family):
    """`train idf|bitsback --resume NAME` goes on from the shipped weights and exports a codec
    that still round-trips real pixels."""
    out, folder = tmp_path / "run", tmp_path / "codecs" / f"{family}-tuned"
    result = CliRunner().invoke(
        main,
        ["train", family, "--data", str(DATA), "--minutes", "0.02", "--out", str(out), "--resume", family,
         "--export", str(folder), "--name", f"{family}-tuned", "--batch", "2", "--crop", "32", "--lr", "1e-7"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["training"]["steps"] > registry.read_config(family)["training"]["steps"]

    crop = photo[60:80, 80:104].copy()
    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        blob = neurocodec.compress(crop, codec=f"{family}-tuned")
        assert (neurocodec.decompress(blob) == crop).all()
    finally:
        registry.load_codec.cache_clear()
