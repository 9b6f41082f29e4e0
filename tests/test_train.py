"""`neurocodec train hyperprior` resumes from the shipped weights and exports a codec folder
that the registry loads and that codes real images."""

import json

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
