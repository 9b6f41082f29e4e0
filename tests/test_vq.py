"""The `vq` family: residual VQ, its index prior and the codec, on a small network trained
here for a few seconds on crops of a real photo (the shipped codec runs the conformance suite)."""

import numpy as np
import pytest
import torch

from neurocodec import container
from neurocodec.families.vq.codec import VQCodec, default_config, stages_for
from neurocodec.families.vq.net import ResidualVQ
from neurocodec.families.vq.spec import VQSpec


@pytest.fixture(scope="module")
def codec(photo):
    torch.manual_seed(0)
    spec = VQSpec(N=16, dim=8, codes=32, stages=3)
    net = spec.build({})
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    rng = np.random.default_rng(0)
    for _ in range(60):
        rows, cols = rng.integers(0, x.shape[1] - 32, 2), rng.integers(0, x.shape[2] - 32, 2)
        batch = torch.stack([x[:, r : r + 32, c : c + 32] for r, c in zip(rows, cols)])
        loss, _ = spec.loss(net, batch, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    config, weights = spec.export(net.eval(), {}, "vq-test")
    return VQCodec(config, weights, bytes(32))


def test_stage_counts_cover_every_quality():
    assert [stages_for(q, 8) for q in (1, 12, 13, 25, 50, 87, 88, 100)] == [1, 1, 2, 2, 4, 7, 8, 8]
    net = VQSpec(N=8, dim=4, codes=4, stages=8).build({})
    qualities = default_config("x", net)["bench_qualities"]
    assert [stages_for(q, 8) for q in qualities] == list(range(1, 9))


def test_a_prefix_of_the_stages_is_the_shorter_code(codec):
    z = torch.randn(1, codec.net.dim, 3, 5)
    with torch.no_grad():
        _, short, _ = codec.net.rvq(z, 2)
        _, full, _ = codec.net.rvq(z, 3)
    assert torch.equal(short, full[:2])


def test_unused_codes_restart_on_the_data():
    rvq = ResidualVQ(stages=1, codes=4, dim=2, decay=0.5, restart_below=0.3)
    rvq.codebooks[0] = torch.tensor([[0.0, 0.0], [50.0, 50.0], [60.0, 60.0], [70.0, 70.0]])
    rvq.ema_sum.copy_(rvq.codebooks)
    data = torch.randn(64, 1, 1, 2) * 0.1  # all near code 0
    rvq.train()
    for _ in range(3):
        rvq(data.permute(0, 3, 1, 2), 1)
    far = rvq.codebooks[0, 1:]
    assert far.abs().max() < 1.0  # the three far codes now sit on residuals of the data
    assert min(rvq.perplexity()) > 1.0


def test_round_trip_file_bits_and_threads(codec, photo_odd):
    x = np.ascontiguousarray(photo_odd[:70, :90])  # 70x90: padded to 80x96 inside
    sizes = []
    for quality in (1, 50, 100):  # 1, 2 and 3 stages
        blob, ideal = codec.measure(x, quality)
        payload = 8 * sum(len(c) for c in container.unpack(blob).chunks)
        assert ideal <= payload <= 1.01 * ideal + 64
        sizes.append(ideal)  # the model's bits: more stages, more bits
        torch.set_num_threads(2)
        try:  # the file's symbols digest fails if the prior's distributions moved with threads
            assert codec.decode(blob).shape == x.shape
        finally:
            torch.set_num_threads(1)
    assert sizes[0] < sizes[1] < sizes[2]


def test_the_shared_first_layer_gives_the_prior_s_own_logits(codec):
    """Coding splits the prior's first-layer sum; in exact mode that must be the same integers."""
    from neurocodec import exact
    from neurocodec.families.context.net import anchors

    torch.manual_seed(1)
    d, h, w = codec.net.dim, 5, 7
    before = exact.to_fixed(torch.randn(1, d, h, w))
    anchor_vectors = exact.to_fixed(torch.randn(1, d, h, w)) * anchors(before)
    mask = anchors(before) * exact.ONE
    with torch.no_grad(), exact.exact_mode():
        first, others = codec.net.prior.both_passes(before, 1)
        assert torch.equal(first, codec.net.prior(before, torch.zeros_like(before), torch.zeros_like(mask), 1))
        assert torch.equal(others(anchor_vectors, mask), codec.net.prior(before, anchor_vectors, mask, 1))


def test_encoder_and_decoder_build_the_same_distributions(codec, photo):
    codec.check(np.ascontiguousarray(photo[:40, :40]), quality=100)


@pytest.mark.parametrize("shape", [(1, 1), (17, 3), (33, 47)])
def test_tiny_and_odd_images(codec, photo, shape):
    x = np.ascontiguousarray(photo[: shape[0], : shape[1]])
    assert codec.decode(codec.encode(x, quality=60)).shape == x.shape
