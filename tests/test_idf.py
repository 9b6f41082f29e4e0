"""The shipped `idf` codec (integer discrete flow) on crops of real photos: real files."""

import dataclasses
import io

import numpy as np
import pytest
import torch
from conftest import load
from PIL import Image

import neurocodec
from neurocodec import container
from neurocodec.errors import FormatError, IntegrityError
from neurocodec import exact
from neurocodec.codec import one_thread
from neurocodec.registry import load_codec


@pytest.fixture(scope="module")
def idf():
    return load_codec("idf")


@pytest.fixture(scope="module")
def crops():
    a, b = load("kodim05_crop.png"), load("kodim23_crop.png")
    return {
        "kodim05": a,
        "kodim23": b,
        "96x128": a[40:136, 30:158],
        "37x23": b[101:124, 57:94],
        "1x1": a[7:8, 9:10],
        "5x64": a[:5, :64],
    }


@pytest.fixture(scope="module")
def files(idf, crops):
    return {k: idf.encode(v) for k, v in crops.items()}


def bpsp(blob: bytes, img: np.ndarray) -> float:
    return 8 * len(blob) / img.size


def test_round_trip_is_bit_exact(idf, crops, files):
    for k, img in crops.items():
        out = neurocodec.decompress(files[k])
        assert out.dtype == np.uint8 and out.shape == img.shape and np.array_equal(out, img), k


def test_rate_beats_png(idf, crops, files):
    # the shipped model: 4.87 and 3.48 bpsp, PNG (Pillow, optimize) 5.99 and 4.28; an
    # untrained flow needs about 7
    for k in ("kodim05", "kodim23"):
        png = io.BytesIO()
        Image.fromarray(crops[k]).save(png, "PNG", optimize=True)
        assert len(files[k]) < 0.9 * len(png.getvalue()), k


def test_coded_size_matches_model_bits(idf, crops, files):
    for k in ("kodim05", "37x23"):
        blob, ideal = idf.measure(crops[k])
        payload = sum(len(c) for c in container.unpack(blob).chunks) * 8
        assert ideal < payload < ideal * 1.005 + 64, (k, payload, ideal)


def test_flow_is_exactly_invertible(idf, crops):
    """Latents -> pixels through the inverse flow gives back every pixel, also for a flow
    with large random weights and for the extreme pixel values 0 and 255."""
    net = idf.net
    gen = torch.Generator().manual_seed(0)
    images = [torch.from_numpy(crops["kodim23"][:64, :64].copy()).permute(2, 0, 1)[None].double()]
    images.append(torch.randint(0, 2, (2, 3, 32, 48), generator=gen).double() * 255)
    with torch.no_grad(), exact.exact_mode(), one_thread():
        for x in images:
            parts = iter(net.groups(x))
            y = net.decode(x.shape, lambda mu, ls: next(parts)[0])
            assert torch.equal(x, y)
            assert not torch.equal(net.latents(x)[:, : x[0].numel()].flatten(), (x - 128).flatten())
    noisy = type(net)(net.n_levels, net.couplings, net.hidden)
    noisy.load_state_dict({k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in net.state_dict().items()})
    x = images[0]
    with torch.no_grad(), exact.exact_mode(), one_thread():
        parts = iter(noisy.groups(x))
        assert torch.equal(noisy.decode(x.shape, lambda mu, ls: next(parts)[0]), x)


def test_files_do_not_depend_on_threads_or_repetition(idf, crops, files):
    """The codec runs its networks on one thread (`one_thread`), but the priors themselves
    must not depend on the thread count either: compare them, and the files, for 1 and 2."""
    x = torch.from_numpy(crops["96x128"].copy()).permute(2, 0, 1)[None].double()
    before = torch.get_num_threads()
    try:
        priors = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad(), exact.exact_mode():
                priors.append(torch.cat([torch.cat([z, mu, ls], 1).flatten() for z, mu, ls in idf.net.groups(x)]))
            assert idf.encode(crops["96x128"]) == files["96x128"]
            assert np.array_equal(idf.decode(files["96x128"]), crops["96x128"])
    finally:
        torch.set_num_threads(before)
    assert torch.equal(priors[0], priors[1])


def test_tiles(idf, crops):
    codec = type(idf)(idf.config | {"tile": 64}, {k: v for k, v in idf.net.state_dict().items()}, idf.weights_digest)
    img = crops["96x128"]
    blob = codec.encode(img)
    box = container.unpack(blob)
    assert len(box.chunks) == 2 * 2 and box.header.params["tile"] == 64
    assert np.array_equal(idf.decode(blob), img)  # the tile size travels in the file


def test_parts_coded_on_two_threads_give_the_same_file(idf, crops, monkeypatch):
    """Issue 14: tiles are coded and decoded on as many threads as torch may use, each on one
    torch thread; the file is the one a single thread writes, and the setting comes back."""
    codec = type(idf)(idf.config | {"tile": 64}, {k: v for k, v in idf.net.state_dict().items()}, idf.weights_digest)
    img = crops["96x128"]
    monkeypatch.setattr(type(codec), "parallel_parts", False)
    serial = codec.encode(img)
    monkeypatch.setattr(type(codec), "parallel_parts", True)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert codec.encode(img) == serial
        assert np.array_equal(codec.decode(serial), img)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_wrong_decode_is_caught_by_checksum(idf, crops, files, monkeypatch):
    box = container.unpack(files["37x23"])
    real = type(idf).decode_chunks

    def wrong(self, header, chunks):
        out = real(self, header, chunks).copy()
        out[5, 7, 1] ^= 1
        return out

    monkeypatch.setattr(type(idf), "decode_chunks", wrong)
    with pytest.raises(IntegrityError):
        idf.decode_container(box)


def test_inconsistent_files_raise_format_error(idf, files):
    box = container.unpack(files["kodim23"])
    for params in ({"tile": 100}, {"tile": "512"}, {}):
        bad = dataclasses.replace(box, header=dataclasses.replace(box.header, params=params))
        with pytest.raises(FormatError):
            idf.decode_container(bad)
    with pytest.raises(FormatError):
        idf.decode_container(dataclasses.replace(box, chunks=box.chunks + [b"\0" * 8]))
    with pytest.raises(FormatError):
        idf.decode_chunks(box.header, [box.chunks[0][:-3]])


def test_calibration_to_the_image_is_in_the_header(idf, crops):
    """Scales calibrated to the tile as its parts are coded, band by band, make real photos
    smaller, and means too ("adapt": 2, shipped); a file without "adapt" (written before it)
    decodes uncalibrated, whatever the codec's config says, and all decode to the same pixels."""
    weights = {k: v for k, v in idf.net.state_dict().items()}
    codecs = {a: type(idf)(idf.config | {"adapt": a}, weights, idf.weights_digest) for a in (0, 1, 2)}
    img = crops["kodim23"]
    files = {a: c.encode(img) for a, c in codecs.items()}
    for a, blob in files.items():
        assert container.unpack(blob).header.params["adapt"] == a
        for c in codecs.values():
            assert np.array_equal(c.decode(blob), img)
    assert container.unpack(idf.encode(img)).header.params["adapt"] == 2
    assert len(files[1]) < 0.995 * len(files[0]) and len(files[2]) < 0.995 * len(files[1])
    box = container.unpack(files[0])
    legacy = dataclasses.replace(box.header, params={k: v for k, v in box.header.params.items() if k != "adapt"})
    assert np.array_equal(codecs[2].decode_chunks(legacy, box.chunks), img)
    with pytest.raises(FormatError):
        codecs[2].decode_chunks(dataclasses.replace(box.header, params=box.header.params | {"adapt": 3}), box.chunks)
    for k in ("1x1", "5x64", "37x23"):  # parts of fewer rows than bands
        assert np.array_equal(codecs[2].decode(codecs[2].encode(crops[k])), crops[k]), k
