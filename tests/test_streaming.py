"""Streams (issue 15): neurocodec.open, and .ncd streams of blocks that readers check whole."""

import copy
import io

import numpy as np
import pytest
from conftest import DATA

import neurocodec
from neurocodec import compose, container, streaming
from neurocodec.compose.steps import Symbols
from neurocodec.entropy import Categorical

TEXT = (DATA / "text" / "walden_excerpt.txt").read_bytes()


@pytest.fixture(scope="module")
def toy():
    """A fast text codec (fixed byte frequencies), registered in this process: the format's
    tests need many blocks, which the shipped text codec codes at about 1 s each."""
    probs = np.ones(256)
    probs[ord("a") : ord("z") + 1] = 50
    probs[ord(" ")] = 100
    codec = compose.LikelihoodCodec("toy-bytes", step=lambda shape: Symbols(Categorical(probs), shape), modality="text")
    return neurocodec.register(codec).name


def members(blob: bytes) -> list[bytes]:
    """A stream cut into its members (start mark, blocks, end mark)."""
    f = io.BytesIO(blob)
    reader = streaming.Reader(f)
    cuts = [f.tell()]
    for _ in reader.members():
        cuts.append(f.tell())
    return [blob[a:b] for a, b in zip([0] + cuts, cuts + [len(blob)])]


def test_open_writes_and_reads_like_gzip_open(tmp_path, toy):
    path = tmp_path / "t.ncd"
    with neurocodec.open(path, "wb", codec=toy, block_size=1000, name="walden.txt") as f:
        for i in range(0, len(TEXT), 777):  # writes that do not fall on block boundaries
            assert f.write(TEXT[i : i + 777]) == len(TEXT[i : i + 777])
    parts = members(path.read_bytes())
    assert len(parts) == 2 + -(-len(TEXT) // 1000)  # start mark, the blocks, end mark
    with neurocodec.open(path) as f:
        assert f.read(5) == TEXT[:5]
        assert f.readline() == TEXT[5:].split(b"\n")[0] + b"\n"
        assert f.read() == TEXT[5 + len(TEXT[5:].split(b"\n")[0]) + 1 :]
    assert neurocodec.decompress(path) == TEXT == neurocodec.decompress(path.read_bytes())
    assert streaming.Reader(io.BytesIO(path.read_bytes())).header.name == "walden.txt"
    with neurocodec.open(path, "wt", codec=toy, block_size=100, encoding="utf-8") as f:
        f.write("naïve\n" * 50)
    with neurocodec.open(path, "rt", encoding="utf-8") as f:
        assert f.readlines() == ["naïve\n"] * 50
    with pytest.raises(FileExistsError):
        neurocodec.open(path, "xb", codec=toy)
    for mode in ("ab", "r+b", "rwb", "rbt"):
        with pytest.raises(ValueError):
            neurocodec.open(path, mode)


def test_one_block_or_less_is_a_plain_ncd_file(toy):
    assert streaming.compress_bytes(TEXT[:1000], toy, block_size=1000) == neurocodec.compress(TEXT[:1000], codec=toy)
    assert streaming.compress_bytes(b"", toy) == neurocodec.compress(b"", codec=toy)
    buf = io.BytesIO()
    with neurocodec.open(buf, "wb", codec=toy) as f:
        f.write(b"")
    assert neurocodec.decompress(buf.getvalue()) == b""


def test_reading_decodes_one_block_at_a_time(toy):
    """Memory does not grow with the stream: reading its start reads its first blocks only."""
    blob = streaming.compress_bytes(TEXT * 4, toy, block_size=1000)

    class Counting(io.BytesIO):
        consumed = 0

        def read(self, n=-1):
            data = super().read(n)
            Counting.consumed += len(data)
            return data

    with neurocodec.open(Counting(blob)) as f:
        assert f.read(10) == TEXT[:10]
        assert Counting.consumed < len(blob) / 4
    writer = streaming.Writer(io.BytesIO(), toy, block_size=1000)
    writer.write(TEXT * 4)
    assert len(writer._buf) <= 1000
    writer.close()


def test_damaged_streams_are_refused(toy):
    blob = streaming.compress_bytes(TEXT, toy, block_size=1000)
    m = members(blob)
    start, blocks, end = m[0], m[1:-1], m[-1]
    cases = {
        "truncated .ncd stream": [start, *blocks],  # cut at a member boundary
        "ended after 0 blocks": [start],
        "the end mark counts": [start, *blocks[:2], *blocks[3:], end],  # a block dropped
        "holds 7 blocks": [start, blocks[0], *blocks, end],  # one repeated
        "not the original's": [start, blocks[1], blocks[0], *blocks[2:], end],  # two swapped
        "trailing data after its end mark": [start, *blocks, end, end],
        "trailing data after the end": [blocks[0], blocks[1]],  # no start mark
        "second start mark": [start, start, *blocks, end],
    }
    for words, parts in cases.items():
        with pytest.raises(neurocodec.FormatError, match=words):
            neurocodec.decompress(b"".join(parts))
    flipped = bytearray(blob)
    flipped[len(start) + 100] ^= 1
    with pytest.raises(neurocodec.FormatError, match="checksum"):
        neurocodec.decompress(bytes(flipped))


def test_hostile_streams_cannot_make_a_reader_hold_more_than_a_block(toy):
    big = streaming.compress_bytes(TEXT, toy, block_size=4000)
    small = streaming.compress_bytes(TEXT, toy, block_size=1000)
    lying = members(small)[0] + b"".join(members(big)[1:])  # blocks of 4000 after a start mark of 1000
    with pytest.raises(neurocodec.FormatError, match="holds 4,000 bytes, its blocks at most 1,000"):
        neurocodec.decompress(lying)
    text = neurocodec.load_codec(toy)
    huge = streaming._mark(text, {"stream": "start", "block": 1 << 40})
    with pytest.raises(neurocodec.FormatError, match="invalid block size"):
        neurocodec.decompress(huge + b"".join(members(small)[1:]))
    # a block member over 2 x its block + 2 MiB is refused as it is read, not after
    h = container.Header(toy, text.weights_digest, "text", True, (10,), {})
    bloated = container.pack(h, [bytes(3 << 20)], container.content_digest(bytes(10)))
    with pytest.raises(neurocodec.FormatError, match="block 1 is over 2,099,152 bytes"):
        neurocodec.decompress(members(small)[0] + bloated)


def test_a_writer_left_by_an_exception_leaves_a_truncated_stream(tmp_path, toy):
    path = tmp_path / "t.ncd"
    with pytest.raises(KeyError):
        with neurocodec.open(path, "wb", codec=toy, block_size=1000) as f:
            f.write(TEXT)
            raise KeyError("the source failed")
    with pytest.raises(neurocodec.FormatError, match="truncated .ncd stream"):
        neurocodec.decompress(path)
    with pytest.raises(neurocodec.CodecNotFound):
        neurocodec.open(tmp_path / "none.ncd", "wb", codec="nosuchcodec")
    assert not (tmp_path / "none.ncd").exists()


def test_images_and_bad_arguments(photo, toy):
    with pytest.raises(neurocodec.InputError, match="codes images"):
        neurocodec.open(io.BytesIO(), "wb", codec="hyperprior")
    blob = neurocodec.compress(photo[:32, :32], codec="hyperprior")
    with neurocodec.open(io.BytesIO(blob)) as f, pytest.raises(neurocodec.InputError, match="holds an image"):
        f.read()
    with pytest.raises(ValueError):
        neurocodec.open(io.BytesIO(), "rb", codec=toy)
    with pytest.raises(ValueError):
        neurocodec.open(io.BytesIO(), "wb", codec=toy, block_size=0)


def test_text_codec_blocks_code_as_its_groups_do():
    """A block of exactly one text-codec group (BLOCK_SIZE is 256 chunks of 8 KiB) codes to
    the payload the same bytes get inside a whole-file encode: shown here with the shipped
    weights and groups of 2 chunks of 1 KiB, so that it runs in seconds."""
    small = copy.copy(neurocodec.load_codec("text"))
    small.chunk, small.group, small.streams = 1024, 2, 2
    data = TEXT[:5000]
    whole = container.unpack(small.encode(data))
    blob = streaming.compress_bytes(data, small, block_size=2048)
    blocks = list(streaming.Reader(io.BytesIO(blob)).members())
    assert [b.chunks for b in blocks] == [[c] for c in whole.chunks]
    assert neurocodec.decompress(blob) == data  # by the installed codec, from the headers' parameters
    shipped = neurocodec.load_codec("text")
    assert streaming.BLOCK_SIZE == shipped.chunk * shipped.group
