"""The `context` family (checkerboard context on the hyperprior), built from the shipped
hyperprior's weights: at zero refinement it codes exactly as the hyperprior; with a nonzero
refinement it still round-trips, its file matches its model's bits, and the refined
distributions do not depend on the thread count."""

import numpy as np
import pytest
import torch
from conftest import psnr
from safetensors.torch import load_file

import neurocodec
from neurocodec import container, registry
from neurocodec.families.context.codec import ContextCodec
from neurocodec.families.context.spec import ContextSpec
from neurocodec.families.hyperprior.codec import default_config
from neurocodec.families.hyperprior.weights import export_weights
from neurocodec.train.loop import resume_state


def _codec(scale: float) -> ContextCodec:
    spec = ContextSpec()
    state, info, _ = resume_state(spec, "hyperprior")
    net = spec.build(info["arch"])
    spec.load(net, state)
    if scale:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in net.ep[-1].parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    config = dict(default_config("ctx-test", net), family="context")
    return ContextCodec(config, export_weights(net.eval()), bytes(32))


@pytest.fixture(scope="module")
def zero():
    return _codec(0.0)


@pytest.fixture(scope="module")
def refined():
    return _codec(0.002)


def test_at_zero_refinement_it_is_the_hyperprior(zero, photo):
    hp = neurocodec.load_codec("hyperprior")
    for q in (10, 75):
        a, b = container.unpack(zero.encode(photo, quality=q)), container.unpack(hp.encode(photo, quality=q))
        assert sum(map(len, a.chunks)) == sum(map(len, b.chunks))  # the same symbols, two calls instead of one
        assert np.array_equal(zero.decode(zero.encode(photo, quality=q)), hp.decode(hp.encode(photo, quality=q)))


def test_refined_round_trip_and_bits(refined, photo_odd):
    blob, bits = refined.measure(photo_odd, quality=60)
    out = refined.decode(blob)
    assert out.shape == photo_odd.shape and psnr(out, photo_odd) > 24
    payload = 8 * sum(map(len, container.unpack(blob).chunks))
    assert bits <= payload <= 1.01 * bits + 96


def test_refined_latents_do_not_depend_on_threads(refined, photo):
    blob = refined.encode(photo, quality=50)
    data = container.unpack(blob).chunks[0]
    before = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(refined.decode_latents(data, photo.shape[0], photo.shape[1], 50))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*out):
        assert torch.equal(a, b)


def test_the_context_trains_from_the_hyperprior(tmp_path):
    from click.testing import CliRunner
    from conftest import DATA

    from neurocodec.cli import main

    r = CliRunner().invoke(main, ["train", "context", "--resume", "hyperprior", "--data", str(DATA), "--minutes", "0.03",
                                  "--batch", "2", "--crop", "64", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert registry.codec_class("context") is ContextCodec


def test_a_bottom_level_below_0_extrapolates_the_gains_to_lower_rates(photo):
    """`bottom_level` maps -q 1 below the lowest trained lambda (as perceptual's low rates):
    the log-gains of levels 0 and 1 are extrapolated, each level down costs fewer bits, and
    the file decodes to what the encoder measured."""
    shipped = neurocodec.load_codec("context")
    config = dict(registry.read_config("context"), name="ctx-low", bottom_level=-2.0)
    weights = load_file(str(registry.codec_folder("context") / config["weights"]))
    low = ContextCodec(config, weights, bytes(32))
    assert (low.level(1), low.level(100)) == (-2.0, shipped.level(100))
    g0, g1 = shipped.log_gain[0], shipped.log_gain[1]
    assert np.allclose(low.gains(1)[0].numpy().ravel(), np.exp(3 * g0 - 2 * g1), atol=2**-16)
    sizes = []
    for codec in (shipped, low):
        blob, bits = codec.measure(photo, quality=1)
        assert codec.decode(blob).shape == photo.shape
        sizes.append(len(blob))
    assert sizes[1] < 0.75 * sizes[0]


def test_device_encode_script_round_trips(tmp_path, photo):
    """scripts/gpu_determinism.py, as the GPU machine will run it (here on the CPU, with the
    search of effort 1): its tar decodes on the CPU to the encoder's symbols, and the report
    gives the rate-distortion summary with its BD-rates."""
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(photo[:64, :64]).save(images / "crop.png")
    script = Path(__file__).parents[1] / "scripts" / "gpu_determinism.py"
    run = lambda *a: subprocess.run([sys.executable, str(script), *a], capture_output=True, text=True, timeout=600)  # noqa: E731
    enc = run("encode", "--device", "cpu", "--images", str(images), "--effort", "1", "--qualities", "10,40,70,100",
              "--threads", "1", "--out", str(tmp_path / "e1.tar"))
    assert enc.returncode == 0, enc.stderr[-2000:]
    assert "1 of 1 images at all 4 qualities" in enc.stdout
    chk = run("check", str(tmp_path / "e1.tar"), "--images", str(images), "--write", str(tmp_path / "report.md"))
    assert chk.returncode == 0, chk.stderr[-2000:]
    report = (tmp_path / "report.md").read_text()
    assert "4 of 4 GPU-encoded files decode on the CPU" in report
    assert "BD-rate against effort 0" in report and "BD-rate (PSNR) against Pillow JPEG" in report
