"""The composition layer: steps push and pop on queues and stacks, misuse fails early with a
message naming the step, and metered bits match what the coder writes."""

import numpy as np
import pytest
import torch

from neurocodec import compose, container, exact
from neurocodec.entropy import Categorical, DiscretizedLaplace
from neurocodec.samples import photo

RNG = np.random.default_rng(0)


def laplace(n, mean=0.0, scale=3.0):
    return DiscretizedLaplace(np.full(n, mean), np.full(n, scale), -50, 50)


def test_symbols_round_trip_on_queue_and_stack():
    x = np.clip(np.round(RNG.laplace(0, 3, 1000)), -50, 50).astype(np.int64)
    for coder in ("range", "ans"):
        assert np.array_equal(compose.check(compose.Symbols(laplace(1000), name="x"), x, coder=coder), x)


def test_metered_bits_match_the_coded_size():
    x = np.clip(np.round(RNG.laplace(0, 3, 20000)), -50, 50).astype(np.int64)
    enc = compose.Encoder(meter=True)
    compose.Symbols(laplace(x.size)).push(enc, x)
    meter = compose.Meter()
    compose.Symbols(laplace(x.size)).push(meter, x)
    coded = 8 * len(enc.to_bytes())
    assert meter.bits == pytest.approx(enc.bits)
    assert enc.bits <= coded <= 1.01 * enc.bits + 64


def test_lockstep_program_is_written_once_and_runs_on_a_stack():
    x = RNG.integers(0, 10, 300)

    def program(io, value):  # each symbol's distribution depends on the one before
        out, prev = np.zeros(300, dtype=np.int64), 0
        for i in range(300):
            probs = np.ones(10)
            probs[prev] = 20
            out[i] = io.code(Categorical(probs[None]), None if value is None else value[i : i + 1])[0]
            prev = out[i]
        return out

    for coder in ("range", "ans"):
        assert np.array_equal(compose.check(compose.Lockstep(program, name="chain"), x, coder=coder), x)


def test_a_program_that_uses_what_only_the_encoder_has_is_named():
    x = RNG.integers(0, 10, 50)

    def program(io, value):  # conditions symbol i on symbol i + 1: the decoder does not have it
        out = np.zeros(50, dtype=np.int64) if value is None else np.array(value)
        for i in range(50):
            probs = np.ones(10)
            probs[out[min(i + 1, 49)]] = 20
            with io.at(f"symbol {i}"):
                out[i] = io.code(Categorical(probs[None]), out[i : i + 1])[0]
        return out

    with pytest.raises(compose.StepError, match=r"step 'chain/symbol \d+'.*not decoded yet"):
        compose.check(compose.Lockstep(program, name="chain"), x)


def test_autoregressive_cannot_see_the_future():
    """The encoder fills its canvas step by step as the decoder does, so a model that looks
    ahead sees only the fill value on both sides: it codes worse, never wrongly."""
    img = photo()[:6, :6, 0].astype(np.int64)

    def peeking(canvas, index):
        r, c = index
        right = canvas[r, np.minimum(c + 1, 5)]
        return DiscretizedLaplace(right.astype(float), np.full(len(r), 4.0), 0, 255)

    step = compose.Autoregressive(peeking, img.shape, compose.wavefront(6, 6, slope=2), name="pixels")
    assert np.array_equal(compose.check(step, img), img)


def test_bitsback_needs_a_stack_and_says_so():
    step = compose.BitsBack(prior=laplace(4), likelihood=lambda z: laplace(4), posterior=lambda x: laplace(4), name="vae")
    with pytest.raises(compose.StepError, match="step 'vae'.*ANS stack"):
        step.push(compose.Encoder(), np.zeros(4, dtype=np.int64))


def test_a_stream_refuses_the_wrong_direction():
    with pytest.raises(compose.StepError, match="step 'x' pops"):
        compose.Symbols(laplace(3), name="x").pop(compose.Encoder())
    enc = compose.Encoder()
    compose.Symbols(laplace(3)).push(enc, np.zeros(3, dtype=np.int64))
    with pytest.raises(compose.StepError, match="pushes"):
        compose.Symbols(laplace(3), name="y").push(compose.Decoder(enc.to_bytes()), np.zeros(3, dtype=np.int64))


def test_bitsback_costs_about_the_negative_elbo():
    """A toy latent model: z in 0..3 picks the mean of 64 symbols; the posterior is exact, so
    the net cost is -log2 p(x) (ELBO = log p(x)), much less than the pushed bits."""
    means = np.array([-20.0, -5.0, 5.0, 20.0])
    prior = Categorical(np.ones(4))
    lik = lambda z: DiscretizedLaplace(np.full(64, means[int(np.ravel(z)[0])]), np.full(64, 2.0), -50, 50)  # noqa: E731

    def post(x):
        logp = np.array([-DiscretizedLaplace(np.full(64, m), np.full(64, 2.0), -50, 50).bits(x).sum() for m in means])
        return Categorical(np.exp2(logp - logp.max())[None])

    step = compose.BitsBack(prior=compose.Symbols(prior, shape=(1,)), likelihood=lik, posterior=post)
    x = np.clip(np.round(RNG.laplace(5, 2, 64)), -50, 50).astype(np.int64)
    stack = compose.Stack(compose.seed_words(64), meter=True)
    step.push(stack, x)
    neg_log_px = lik(np.array([2])).bits(x).sum() + 2 - 0  # z = 2 dominates the posterior here
    assert stack.bits == pytest.approx(neg_log_px, abs=0.5)
    assert np.array_equal(compose.check(step, x, coder="ans"), x)


def test_tiles_chain_on_a_stack_in_reverse():
    img = photo()[:20, :30]

    def step_for(shape):
        n = shape[0] * shape[1] * 3
        return compose.Symbols(DiscretizedLaplace(np.full(n, 128.0), np.full(n, 30.0), 0, 255), shape=shape + (3,))

    tiles = compose.Tiles(step_for, img.shape, 8)
    for coder in ("range", "ans"):
        assert np.array_equal(compose.check(tiles, img, coder=coder), img)


def test_likelihood_codec_tiles_into_chunks_and_checks_weights():
    net = exact.Conv2d(3, 6, 1)

    def step(shape):
        def predict(canvas, index):
            mean, log_scale = net(compose.image_to_fixed(np.zeros(shape, np.uint8))).chunk(2, 1)
            return compose.Pixels(mean[0].permute(1, 2, 0)[index], log_scale[0].permute(1, 2, 0)[index]).dist
        return compose.Autoregressive(predict, shape, compose.wavefront(shape[0], shape[1], 1))

    codec = compose.LikelihoodCodec("toy", step=step, model=net, tile=16)
    img = photo()[:40, :20]
    blob, bits = codec.measure(img)
    box = container.unpack(blob)
    assert len(box.chunks) == 3 * 2 and box.header.params == {"tile": 16}
    assert bits <= 8 * sum(map(len, box.chunks)) <= 1.01 * bits + 64 * len(box.chunks)
    assert np.array_equal(codec.decode(blob), img)
    with torch.no_grad():
        net.bias.add_(1.0)
    other = compose.LikelihoodCodec("toy", step=step, model=net, tile=16)
    with pytest.raises(Exception, match="other weights"):
        other.decode(blob)
