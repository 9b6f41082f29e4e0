"""The entropy backend: random symbols under random models round-trip, and the coded size
stays within 1 % of the model's own -log2 p."""

import numpy as np
import pytest

from neurocodec.entropy import (
    AnsCoder,
    Categorical,
    DiscretizedGaussian,
    DiscretizedLogisticMixture,
    RangeDecoder,
    RangeEncoder,
)
from neurocodec.entropy.coders import SPARE_BITS, least_bits
from neurocodec.errors import FormatError

N = 100_000


def sample(table: np.ndarray, rng) -> np.ndarray:
    """One symbol index per row of a (n, K) probability table."""
    table = table / table.sum(axis=1, keepdims=True)
    return (table.cumsum(axis=1) > rng.random((table.shape[0], 1))).argmax(axis=1)


def random_gaussian(rng, n=N):
    means = rng.normal(0, 20, n)
    scales = np.exp(rng.uniform(np.log(0.11), np.log(60), n))
    symbols = np.clip(np.round(rng.normal(means, scales)), -300, 300).astype(np.int64)
    return DiscretizedGaussian(means, scales, -300, 300), symbols


def random_categorical(rng, n=N):
    dist = Categorical.from_logits(rng.normal(0, 3, (n, 37)), lo=-5)
    return dist, sample(dist.probs, rng) - 5


def random_mixture(rng, n=N):
    c = 5
    dist = DiscretizedLogisticMixture(
        rng.normal(size=(n, c)), rng.uniform(-10, 265, (n, c)), rng.uniform(-1.5, 3.5, (n, c))
    )
    return dist, sample(dist.table(), rng)


MODELS = [random_gaussian, random_categorical, random_mixture]


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
def test_range_coder_round_trip_and_overhead(make):
    rng = np.random.default_rng(1)
    dist, symbols = make(rng)
    enc = RangeEncoder()
    enc.encode(symbols, dist)
    data = enc.to_bytes()
    assert np.array_equal(RangeDecoder(data).decode(dist), symbols)
    ideal = dist.bits(symbols).sum()
    overhead = len(data) * 8 / ideal - 1
    print(f"{make.__name__}: {ideal / N:.3f} bits/symbol ideal, overhead {100 * overhead:.4f} %")
    assert -0.001 < overhead < 0.01


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
def test_ans_stack_round_trip_and_overhead(make):
    rng = np.random.default_rng(2)
    dist, symbols = make(rng)
    ans = AnsCoder()
    ans.push(symbols, dist)
    data = ans.to_bytes()
    assert len(data) * 8 / dist.bits(symbols).sum() - 1 < 0.01
    popped = AnsCoder(data)
    assert np.array_equal(popped.pop(dist), symbols)
    assert popped.is_empty()


def test_ans_is_a_stack():
    rng = np.random.default_rng(3)
    a, sa = random_categorical(rng, 500)
    b, sb = random_gaussian(rng, 700)
    ans = AnsCoder()
    ans.push(sa, a)
    ans.push(sb, b)
    ans = AnsCoder(ans.to_bytes())
    assert np.array_equal(ans.pop(b), sb)  # last in, first out
    assert np.array_equal(ans.pop(a), sa)


def test_queue_keeps_order_across_models_and_shared_distributions():
    rng = np.random.default_rng(4)
    shared = Categorical(np.array([0.5, 0.25, 0.125, 0.125]), lo=10)
    s1 = rng.integers(10, 14, 1000)
    g, s2 = random_gaussian(rng, 300)
    enc = RangeEncoder()
    enc.encode(s1, shared)
    enc.encode(s2, g)
    enc.encode(np.array([], dtype=np.int64), shared)
    dec = RangeDecoder(enc.to_bytes())
    assert np.array_equal(dec.decode(shared, 1000), s1)
    assert np.array_equal(dec.decode(g), s2)


def test_every_symbol_in_the_support_is_codable_even_at_zero_probability():
    dist = Categorical(np.array([1.0, 0.0, 0.0, 1e-30]))
    enc = RangeEncoder()
    enc.encode(np.array([1, 2, 3, 0]), dist)
    assert np.array_equal(RangeDecoder(enc.to_bytes()).decode(dist, 4), [1, 2, 3, 0])


def test_symbols_outside_the_support_are_refused():
    with pytest.raises(ValueError, match="support"):
        RangeEncoder().encode(np.array([0, 5]), Categorical(np.ones(4)))
    with pytest.raises(ValueError, match="support"):
        RangeEncoder().encode(np.array([301]), DiscretizedGaussian([0.0], [1.0], -300, 300))


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError):
        Categorical(np.array([0.5, -0.1]))
    with pytest.raises(ValueError):
        DiscretizedGaussian([0.0], [0.0], -3, 3)


def test_decoder_rejects_data_of_odd_length():
    with pytest.raises(FormatError):
        RangeDecoder(b"abc")


def _unlikely(make, rng):
    """Symbols the model finds (nearly) impossible: where constriction's floor of one unit in
    2**24 costs far less than -log2 p."""
    if make is random_gaussian:
        dist, _ = make(rng, 5000)
        return dist, np.where(dist.means > 0, -300, 300)
    if make is random_categorical:
        dist = Categorical.from_logits(rng.normal(0, 40, (5000, 37)), lo=-5)
        return dist, dist.probs.argmin(axis=1) - 5
    dist, _ = make(rng, 5000)
    return dist, dist.table().argmin(axis=1)


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
def test_least_bits_never_exceeds_what_the_range_coder_spent(make):
    # the bound a bounded decoder stops at (streams.Decoder): a real stream never reaches it,
    # for likely symbols and for symbols of (float) probability near 0 alike
    rng = np.random.default_rng(5)
    for dist, symbols in (make(rng, 5000), _unlikely(make, rng)):
        enc = RangeEncoder()
        enc.encode(symbols, dist)
        spent = 8 * len(enc.to_bytes())
        assert least_bits(dist, symbols) <= spent + SPARE_BITS
        with np.errstate(divide="ignore"):
            assert least_bits(dist, symbols) >= 0.9 * min(dist.bits(symbols).sum(), spent)  # not vacuous


def test_mean_calibration_learns_a_bias_and_moves_nothing_without_one():
    """`MeanCalibration`: after symbols that all sat half a scale above their means, it moves
    those means up by about half a scale (shrunk by its prior); other contexts stay put."""
    import torch

    from neurocodec import exact
    from neurocodec.entropy.calibration import MeanCalibration, signed_error

    means = MeanCalibration(2, prior=100)
    scale = torch.full((1, 400), 0.01, dtype=torch.float64)
    mean = torch.zeros_like(scale)
    with exact.exact_mode():
        e = signed_error(mean + 0.5 * scale * exact.ONE, mean, scale)
    means.update(torch.zeros(400, dtype=torch.long), e)
    moved = means.shift(torch.tensor([0, 1]), torch.tensor([0.01, 0.01], dtype=torch.float64) * exact.ONE)
    assert abs(moved[0] / (0.01 * exact.ONE) - 0.5 * 400 / 500) < 1e-3 and moved[1] == 0
