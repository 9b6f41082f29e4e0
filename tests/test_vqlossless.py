"""The `vqlossless` family: the pixels given a vq codec's code vectors, on a small network
trained here for a few seconds on crops of a real photo (the shipped codec runs the
conformance suite)."""

import dataclasses
import os

import numpy as np
import pytest
import torch

from neurocodec import container, registry
from neurocodec.errors import FormatError
from neurocodec.families.vq.spec import VQSpec
from neurocodec.families.vqlossless.codec import VQLosslessCodec
from neurocodec.families.vqlossless.spec import VQLosslessSpec


@pytest.fixture(scope="module")
def model(photo, tmp_path_factory):
    """A small pixel model on a small vq codec, installed in a folder of its own (vqlossless
    loads the vq weights it pins from there)."""
    torch.manual_seed(0)
    vq_spec = VQSpec(N=16, dim=8, codes=32, stages=3)
    config, weights = vq_spec.export(vq_spec.build({}).eval(), {}, "vq-tiny")
    root = tmp_path_factory.mktemp("codecs")
    registry.write_codec_folder(root / "vq-tiny", config, weights)
    before = os.environ.get("NEUROCODEC_CODECS")
    os.environ["NEUROCODEC_CODECS"] = str(root)
    spec = VQLosslessSpec(vq="vq-tiny", width=16)
    net = spec.build({})
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-3)
    x = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    rng = np.random.default_rng(0)
    for _ in range(60):
        rows, cols = rng.integers(0, x.shape[1] - 32, 4), rng.integers(0, x.shape[2] - 32, 4)
        loss, _ = spec.loss(net, torch.stack([x[:, r : r + 32, c : c + 32] for r, c in zip(rows, cols)]), 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    yield net.eval()
    if before is None:
        del os.environ["NEUROCODEC_CODECS"]
    else:
        os.environ["NEUROCODEC_CODECS"] = before


@pytest.fixture(scope="module")
def codec(model):
    config, weights = VQLosslessSpec(stages=2).export(model, {}, "vqlossless-test")
    return VQLosslessCodec(config, weights, bytes(32))


@pytest.fixture(scope="module")
def fixed_codec(model):
    """The same model without calibration to the image (files written before it existed)."""
    config, weights = VQLosslessSpec(stages=2).export(model, {}, "vqlossless-test")
    return VQLosslessCodec(dict(config, adapt=False), weights, bytes(32))


def test_round_trip_and_threads(codec, photo_odd):
    blob = codec.encode(photo_odd)
    assert np.array_equal(codec.decode(blob), photo_odd)
    torch.set_num_threads(2)
    try:
        assert codec.encode(photo_odd) == blob
    finally:
        torch.set_num_threads(1)


def test_file_bits_are_the_training_loss(fixed_codec, model, photo):
    """What training minimizes is what the file costs: the float model's bits for the pixels
    plus the vq prior's for the indices, within 2 % (the coder runs the exact twin), before
    the calibration to the image (which only the coder does)."""
    crop = photo[:64, :96]
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        pixel_bits = model(x, 2).item() * crop.size
        _, indices, _ = model.vq.rvq(model.vq.g_a(x), 2)
        index_bits = model.vq.prior_bits(indices).item()
    blob, ideal = fixed_codec.measure(crop)
    payload = sum(len(c) for c in container.unpack(blob).chunks) * 8
    assert abs(ideal - (pixel_bits + index_bits)) < 0.02 * ideal
    assert ideal <= payload < ideal * 1.01 + 64


def test_encoder_and_decoder_build_the_same_distributions(codec, photo):
    codec.check(photo[:40, :56])  # compose.check: a phase that saw a later one would differ here


def test_calibration_to_the_image_saves_bits_and_old_files_keep_decoding(codec, fixed_codec, photo):
    """A photo noisier than the model's training crops: its scales are too narrow everywhere,
    which calibrating them as the image is coded must mend. A file from before (no "adapt" in
    its header) decodes as it was written, and its header says so."""
    noise = np.random.default_rng(0).normal(0, 6, (96, 128, 3))
    crop = np.clip(photo[:96, :128] + noise, 0, 255).round().astype(np.uint8)
    adapted, plain = codec.encode(crop), fixed_codec.encode(crop)
    assert container.unpack(adapted).header.params["adapt"] == 1
    assert len(adapted) < len(plain)
    c = container.unpack(plain)
    old = container.pack(dataclasses.replace(c.header, params={k: v for k, v in c.header.params.items() if k != "adapt"}),
                         c.chunks, c.content_digest)
    assert np.array_equal(codec.decode(old), crop) and np.array_equal(codec.decode(plain), crop)


def test_calibration_finds_the_factor_a_model_is_off_by():
    """Sub-pixels whose errors are Laplace with twice the scale the model says: after a few
    thousand, each context's factor is 2 within 3 %, and contexts without data keep 1."""
    from neurocodec import exact
    from neurocodec.families.vqlossless.adapt import ScaleAdapter

    adapter = ScaleAdapter()
    base = exact.fixed_exp(torch.full((50, 40), -2.0 * exact.ONE, dtype=torch.float64))
    contexts = torch.full((50, 40), 7, dtype=torch.int64)
    for seed in range(3):
        errors = np.abs(np.random.default_rng(seed).laplace(0, 2 * base[0, 0].item(), (50, 40)))
        u = torch.from_numpy(np.floor(errors / base.numpy() * exact.ONE))  # normalized_error, exact units
        adapter.update(contexts, u)
    assert abs(adapter.scale(contexts, base)[0, 0] / base[0, 0] - 2) < 0.06
    assert torch.equal(adapter.scale(contexts + 1, base), base)


@pytest.mark.parametrize("adapt", [2, -1, True, "1", 1.0])
def test_a_calibration_flag_that_is_not_0_or_1_is_refused(codec, photo, adapt):
    c = container.unpack(codec.encode(photo[:16, :16]))
    header = dataclasses.replace(c.header, params=dict(c.header.params, adapt=adapt))
    with pytest.raises(FormatError, match="adapt"):
        codec.decode(container.pack(header, c.chunks, c.content_digest))


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (33, 2), (16, 16)])
def test_tiny_and_odd_images(codec, photo, shape):
    x = photo[: shape[0], : shape[1]]
    assert np.array_equal(codec.decode(codec.encode(x)), x)


@pytest.mark.parametrize("stages", [0, 4, True, "2"])
def test_a_stage_count_the_model_does_not_have_is_refused(codec, photo, stages):
    c = container.unpack(codec.encode(photo[:16, :16]))
    header = dataclasses.replace(c.header, params=dict(c.header.params, stages=stages))
    with pytest.raises(FormatError, match="stages"):
        codec.decode(container.pack(header, c.chunks, c.content_digest))


def test_the_codec_ships_only_its_pixel_model_and_pins_the_vq_weights(codec, model):
    """The vq weights are not copied: the codec loads the very file it pins, by SHA-256, and
    refuses to start when those weights are not installed."""
    from neurocodec.errors import NeurocodecError
    from neurocodec.families.vqlossless.codec import VQ_PIN

    config, weights = VQLosslessSpec(vq="vq-tiny").export(model, {}, "vqlossless-test")
    assert not any(k.startswith("vq.") for k in weights)
    assert bytes(weights[VQ_PIN].tolist()).hex() == registry.read_config("vq-tiny")["weights_sha256"]
    for key, value in registry.weights_by_digest("vq-tiny", config["arch"]["vq_weights"]["weights_sha256"]).items():
        if not key.startswith("g_s."):
            assert torch.equal(codec.net.vq.state_dict()[key], value.float())
    weights[VQ_PIN] = torch.zeros(32, dtype=torch.uint8)
    with pytest.raises(NeurocodecError, match="not installed"):
        VQLosslessCodec(config, weights, bytes(32))


def test_a_pinned_weights_file_is_found_where_retraining_retired_it(tmp_path, monkeypatch):
    """Retraining the vq codec moves its old weights to retired/<digest>/; a codec that pins
    them still finds them there, and no other weights under that name."""
    from neurocodec.errors import NeurocodecError

    monkeypatch.setenv("NEUROCODEC_CODECS", str(tmp_path))
    spec = VQSpec(N=8, dim=4, codes=4, stages=1)
    first_config, first = spec.export(spec.build({}).eval(), {}, "vq-pinned")
    registry.write_codec_folder(tmp_path / "vq-pinned", first_config, first)
    old = registry.read_config("vq-pinned")["weights_sha256"]
    torch.manual_seed(1)
    second_config, second = spec.export(spec.build({}).eval(), {}, "vq-pinned")
    registry.write_codec_folder(tmp_path / "vq-pinned", second_config, second)  # retires the first
    assert registry.read_config("vq-pinned")["weights_sha256"] != old
    found = registry.weights_by_digest("vq-pinned", old)
    assert all(torch.equal(found[k], first[k]) for k in first)
    with pytest.raises(NeurocodecError, match="not installed"):
        registry.weights_by_digest("vq-pinned", "0" * 64)


def test_training_resumes_from_a_shipped_codec_folder(model, tmp_path):
    """What `neurocodec train vqlossless --resume vqlossless` (and the GPU recipe) does: the
    folder's pixel model and its pinned vq weights come back as they were."""
    from neurocodec.train.loop import resume_state

    spec = VQLosslessSpec(vq="vq-tiny")
    config, weights = spec.export(model, {}, "vqlossless-test")
    registry.write_codec_folder(tmp_path / "vqlossless-test", config, weights)
    state, info, _ = resume_state(spec, str(tmp_path / "vqlossless-test"))
    again = spec.build(info["arch"])
    spec.load(again, state)
    from neurocodec.families.vq.codec import TRAINING_ONLY

    for key, value in model.state_dict().items():
        if key.removeprefix("vq.") not in TRAINING_ONLY:  # the codebooks' running sums: never shipped
            assert torch.equal(again.state_dict()[key], value), key
