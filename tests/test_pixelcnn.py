"""The shipped `pixelcnn` codec on crops of real photos: real files written and decoded."""

import dataclasses

import numpy as np
import pytest
import torch

import neurocodec
from neurocodec import container
from neurocodec.errors import FormatError, IntegrityError
from neurocodec import exact
from neurocodec.families.pixelcnn.codec import mixture_pmf, wavefront
from neurocodec.families.pixelcnn.net import mixture_nll, normalize


@pytest.fixture(scope="module")
def codec():
    return neurocodec.load_codec("pixelcnn")


@pytest.fixture(scope="module")
def crop(photo_odd):
    return np.ascontiguousarray(photo_odd[40:80, 60:108])  # 40x48 of kodim05


@pytest.fixture(scope="module")
def coded(codec, crop):
    return codec.measure(crop)


@pytest.fixture(scope="module")
def blob(coded):
    return coded[0]


def test_round_trip_is_exact_and_beats_png(codec, crop, blob):
    assert np.array_equal(neurocodec.decompress(blob), crop)
    bpsp = 8 * len(blob) / crop.size
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(crop).save(png, format="PNG", optimize=True)
    print("pixelcnn bpsp", bpsp, "png", 8 * png.tell() / crop.size)
    assert bpsp < 0.85 * 8 * png.tell() / crop.size  # an untrained model costs ~9 bpsp


def test_coded_size_matches_the_model(coded):
    blob, model_bits = coded
    payload_bits = 8 * sum(len(c) for c in container.unpack(blob).chunks)
    print("model bits", model_bits, "coded bits", payload_bits)
    assert model_bits <= payload_bits <= 1.01 * model_bits + 64


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (5, 13)])
def test_tiny_images(codec, photo, shape):
    x = np.ascontiguousarray(photo[100 : 100 + shape[0], 30 : 30 + shape[1]])
    assert np.array_equal(codec.decode(codec.encode(x)), x)


def test_many_tiles_and_groups(codec, crop):
    saved = codec.stripe, codec.tile_width, codec.group
    try:
        codec.stripe, codec.tile_width, codec.group = 8, 20, 4  # 5 x 3 tiles in 4 groups
        blob = codec.encode(crop[:, :45])
        assert len(container.unpack(blob).chunks) == 4
    finally:
        codec.stripe, codec.tile_width, codec.group = saved
    assert np.array_equal(codec.decode(blob), crop[:, :45])  # the tiling comes from the file


def test_wavefront_decodes_every_neighbour_first():
    radius = 2
    tile, row, col, starts = wavefront([(5, 9), (3, 4)], radius + 1)
    step = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    when = {(t, r, c): s for t, r, c, s in zip(tile, row, col, step)}
    assert len(when) == 5 * 9 + 3 * 4
    for (t, r, c), s in when.items():
        for dr in range(-radius, 1):
            for dc in range(-radius, radius + 1):
                if (dr, dc) >= (0, 0):
                    continue
                if (t, r + dr, c + dc) in when:
                    assert when[(t, r + dr, c + dc)] < s


def test_exact_features_do_not_depend_on_the_batch(codec, crop):
    """The whole-image convolution and one pixel's neighbourhood give the same integers."""
    net, rad = codec.net, codec.net.radius
    x = exact.to_fixed(normalize(torch.from_numpy(crop[:16, :16]).permute(2, 0, 1)[None]))
    with torch.no_grad(), exact.exact_mode():
        padded = net.pad(x)
        full = net.features(padded)
        r, c = 9, 5
        one = net.features(padded[:, :, r : r + rad + 1, c : c + 2 * rad + 1])
    for a, b in zip(full, one):  # the features and the linear path
        assert torch.equal(a[:, :, r, c], b[:, :, 0, 0])


def test_threads_do_not_change_the_file(codec, crop, blob):
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = codec.encode(crop)
        torch.set_num_threads(2)
        two = codec.encode(crop)
    finally:
        torch.set_num_threads(old)
    assert one == two == blob


def test_table_pmf_matches_the_float_likelihood(codec, crop):
    """The coded distribution (tables) is the trained one (float) to within a few percent of bits."""
    net = codec.net
    x = normalize(torch.from_numpy(crop[:24, :24]).permute(2, 0, 1)[None])
    with torch.no_grad():
        h = net.features(net.pad(x))
        p = net.head(1, h, x)
        float_bits = mixture_nll(p, x[:, 1:2]).sum().item() / np.log(2)
        with exact.exact_mode():
            xf = exact.to_fixed(x)
            pf = net.head(1, net.features(net.pad(xf)), xf)
        pmf = mixture_pmf(pf[0].flatten(1).T, net.mixtures)
        sym = torch.from_numpy(crop[:24, :24, 1].reshape(-1).astype(np.int64))
        table_bits = -torch.log2(pmf.gather(1, sym[:, None])[:, 0] / pmf.sum(1)).sum().item()
    print("float", float_bits, "table", table_bits)
    assert abs(table_bits - float_bits) < 0.01 * float_bits


def test_a_wrong_decode_is_caught_by_the_checksum(codec, crop, blob, monkeypatch):
    real = type(codec).decode_chunks

    def off_by_one(self, header, chunks):
        out = real(self, header, chunks)
        out[3, 4, 1] ^= 1
        return out

    monkeypatch.setattr(type(codec), "decode_chunks", off_by_one)
    with pytest.raises(IntegrityError):
        codec.decode(blob)


def test_inconsistent_files_are_format_errors(codec, crop, blob):
    box = container.unpack(blob)
    missing = dataclasses.replace(box, chunks=box.chunks[:-1] if len(box.chunks) > 1 else [])
    with pytest.raises(FormatError):
        codec.decode(missing)
    header = dataclasses.replace(box.header, params={"stripe": 0, "tile_width": 8, "group": 1})
    with pytest.raises(FormatError):
        codec.decode(dataclasses.replace(box, header=header))
    header = dataclasses.replace(box.header, params={})
    with pytest.raises(FormatError):
        codec.decode(dataclasses.replace(box, header=header))
