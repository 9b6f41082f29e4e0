"""The shipped `hyperprior` codec on real photos: real files written and decoded."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import psnr
from PIL import Image

import neurocodec
from neurocodec import container
from neurocodec.errors import CodecNotFound, FormatError, InputError, NeurocodecError, WeightsMismatch
from neurocodec.families.hyperprior.codec import HyperpriorCodec


@pytest.fixture(scope="module")
def files(hyperprior, photo):
    return {q: hyperprior.encode(photo, quality=q) for q in (1, 50, 100)}


def test_round_trip_reports_real_rate_and_distortion(hyperprior, photo, files):
    rates, quality = [], []
    for q, blob in files.items():
        out = neurocodec.decompress(blob)
        assert out.shape == photo.shape and out.dtype == np.uint8
        rates.append(8 * len(blob) / (photo.shape[0] * photo.shape[1]))
        quality.append(psnr(out, photo))
    print("bpp", rates, "PSNR", quality)
    assert rates == sorted(rates) and quality == sorted(quality)  # quality buys rate and fidelity
    assert rates[0] < 0.5 < rates[-1]
    # the shipped model measured 30.7 dB at q50 and 33.6 dB at q100 on this crop; an
    # untrained network gives 12-19 dB
    assert quality[1] > 28 and quality[-1] > 30


def test_files_are_deterministic(hyperprior, photo, files):
    assert hyperprior.encode(photo, quality=50) == files[50]


def test_sizes_that_are_not_multiples_of_64(hyperprior, photo_odd):
    for h, w in [(1, 1), (3, 65), (152, 200), (70, 9)]:
        img = photo_odd[:h, :w]
        out = neurocodec.decompress(hyperprior.encode(img, quality=75))
        assert out.shape == (h, w, 3)
    assert psnr(neurocodec.decompress(hyperprior.encode(photo_odd, quality=75)), photo_odd) > 24


def test_large_images_are_tiled(hyperprior, photo):
    codec = type(hyperprior)(hyperprior.config | {"tile": 128}, _weights(), hyperprior.weights_digest)
    blob = codec.encode(photo, quality=50)
    box = container.unpack(blob)
    assert len(box.chunks) == 2 * 2 and box.header.params["tile"] == 128
    out = hyperprior.decode(blob)  # the tile size travels in the file
    assert out.shape == photo.shape and psnr(out, photo) > 28  # 30.7 dB untiled


def _weights():
    from safetensors.torch import load_file

    from neurocodec import registry

    return load_file(str(registry.codec_folder("hyperprior") / registry.WEIGHTS))


def test_latents_are_identical_with_one_and_two_threads(hyperprior, photo, files):
    """The decoder rebuilds exactly the probabilities the encoder used, whatever the thread
    count: the decoded symbols must match bit for bit; pixels may differ by one level."""
    blob = hyperprior.encode(photo, quality=75)
    box = container.unpack(blob)
    gain, inv_gain = hyperprior.gains(75)
    h, w, _ = photo.shape
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            z, y, mu = hyperprior.decode_latents(box.chunks[0], h, w, 75)
            results.append((z, y, mu, hyperprior.decode(blob)))
    finally:
        torch.set_num_threads(before)
    (z1, y1, mu1, x1), (z2, y2, mu2, x2) = results
    assert torch.equal(z1, z2) and torch.equal(y1, y2) and torch.equal(mu1, mu2)
    assert np.abs(x1.astype(int) - x2).max() <= 1


def test_pillow_inputs(hyperprior, photo):
    gray = Image.fromarray(photo).convert("L")
    out = neurocodec.decompress(neurocodec.compress(gray, quality=50))
    assert out.shape == photo.shape  # grayscale is coded as RGB
    with pytest.raises(InputError, match="alpha"):
        neurocodec.compress(Image.fromarray(photo).convert("RGBA"))
    with pytest.raises(InputError, match="16-bit"):
        neurocodec.compress(Image.fromarray(photo[:, :, 0].astype(np.uint16) * 257))
    palette = Image.fromarray(photo).convert("P")
    assert neurocodec.decompress(neurocodec.compress(palette, quality=50)).shape == photo.shape


@pytest.mark.parametrize("bad", [0, 101, 2.5, "50"])
def test_quality_outside_1_to_100_is_refused(hyperprior, photo, bad):
    with pytest.raises(InputError, match="quality"):
        hyperprior.encode(photo[:16, :16], quality=bad)


def test_wrong_arrays_are_refused(hyperprior):
    with pytest.raises(InputError):
        hyperprior.encode(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(InputError):
        hyperprior.encode(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InputError):
        hyperprior.encode(np.zeros((0, 8, 3), np.uint8))


@pytest.fixture(scope="module")
def small_file(hyperprior, photo):
    return hyperprior.encode(photo[:40, :56], quality=50)


def test_truncation_at_every_offset_is_reported(small_file):
    for n in range(len(small_file)):
        with pytest.raises(FormatError):
            neurocodec.decompress(small_file[:n])


def test_random_byte_changes_are_reported(small_file):
    rng = np.random.default_rng(0)
    for _ in range(1000):
        bad = bytearray(small_file)
        i = int(rng.integers(len(bad)))
        bad[i] = (bad[i] + int(rng.integers(1, 256))) % 256
        with pytest.raises(FormatError):
            neurocodec.decompress(bytes(bad))


def _rewrap(blob: bytes, **changes) -> bytes:
    box = container.unpack(blob)
    header = dataclasses.replace(box.header, **changes)
    return container.pack(header, box.chunks, box.content_digest)


def test_unknown_codec_and_foreign_weights(small_file):
    with pytest.raises(CodecNotFound, match="not installed"):
        neurocodec.decompress(_rewrap(small_file, codec="nosuchcodec"))
    with pytest.raises(WeightsMismatch, match="other weights"):
        neurocodec.decompress(_rewrap(small_file, weights_digest=b"\x01" * 32))


def test_inconsistent_header_is_reported(small_file):
    with pytest.raises(FormatError):
        neurocodec.decompress(_rewrap(small_file, shape=(400, 56, 3)))  # more tiles than chunks
    for shape in [(40, 56), (40, 56, 4), (0, 56, 3)]:  # not an HxWx3 image: Codec.decode_container refuses it
        with pytest.raises(FormatError, match="HxWx3"):
            neurocodec.decompress(_rewrap(small_file, shape=shape))
    with pytest.raises(NeurocodecError):
        neurocodec.decompress(_rewrap(small_file, params={"quality": 500, "tile": 1024}))


@pytest.mark.parametrize("name", ["hyperprior", "context"])
def test_effort_searches_the_latents_and_never_changes_the_decoder(name, photo):
    """Effort 1 optimizes the tile's latents before coding (annealed rounding, the codec's own
    rate model, for `context` its checkerboard context too): the same decoder reads the file,
    the result is better by the rate-distortion measure the network was trained for, and the
    same input gives the same file again."""
    from neurocodec.errors import InputError

    codec = neurocodec.load_codec(name)
    x = photo[:64, :96]
    plain, searched = codec.encode(x, quality=50), codec.encode(x, quality=50, effort=1)
    assert codec.encode(x, quality=50, effort=1) == searched
    out0, out1 = neurocodec.decompress(plain), neurocodec.decompress(searched)
    mse = lambda out: np.mean((out.astype(float) - x) ** 2)  # noqa: E731
    lam = 0.007746  # quality 50's lambda (level 4); the training loss is lam * 255^2 * MSE(0..1) + bpp
    cost = lambda blob, out: lam * mse(out) + 8 * len(blob) / (64 * 96)  # noqa: E731
    assert cost(searched, out1) < cost(plain, out0)
    with pytest.raises(InputError, match="effort"):
        codec.encode(x, quality=50, effort=7)


class _Independent(HyperpriorCodec):
    """Each tile analysed and synthesized alone, as files before the overlap were written."""

    def params(self, x, quality):
        return {"quality": quality, "tile": self.tile}


def test_tiles_overlap_and_files_without_overlap_still_decode(hyperprior, photo):
    """An image larger than a tile is analysed and synthesized in overlapping windows (the
    header says so); a file of independent tiles, as earlier versions wrote, decodes as before."""
    seamless = type(hyperprior)(hyperprior.config | {"tile": 128}, _weights(), hyperprior.weights_digest)
    old = _Independent(hyperprior.config | {"tile": 128}, _weights(), hyperprior.weights_digest)
    new_blob, old_blob = seamless.encode(photo, quality=50), old.encode(photo, quality=50)
    assert container.unpack(new_blob).header.params["overlap"] == 128
    assert "overlap" not in container.unpack(old_blob).header.params
    a, b = hyperprior.decode(new_blob), hyperprior.decode(old_blob)
    assert psnr(a, photo) > 28 and psnr(b, photo) > 28

    def step(img):  # the pixel step across the tile border at column 128, relative to elsewhere
        d = np.abs(np.diff(img.astype(int), axis=1)).mean(axis=(0, 2))
        return d[127] / np.delete(d, 127).mean()

    assert step(a) < step(b)


def test_overlapping_tiles_keep_the_image_edges(hyperprior, photo_odd):
    """The last rows and columns of an image whose sides are not multiples of 64 are
    synthesized from the latents of their tile's padding, as a tile alone would be: cut at the
    image's edge, they decoded 1-3 dB below independent tiles (on 4096-px photos, 23 dB)."""
    x = photo_odd  # 152 x 200: the last tiles are 24 and 72 pixels, padded to 64 and 128
    seamless = type(hyperprior)(hyperprior.config | {"tile": 128}, _weights(), hyperprior.weights_digest)
    old = _Independent(hyperprior.config | {"tile": 128}, _weights(), hyperprior.weights_digest)
    a, b = (hyperprior.decode(c.encode(x, quality=50)) for c in (seamless, old))
    assert psnr(a, x) >= psnr(b, x) - 0.1
    assert psnr(a[-4:], x[-4:]) > psnr(b[-4:], x[-4:]) - 0.5
    assert psnr(a[:, -4:], x[:, -4:]) > psnr(b[:, -4:], x[:, -4:]) - 0.5
