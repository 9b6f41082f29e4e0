"""Tests of the .ncd container (neurocodec.container): round trips, layout, and strict reading."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib

import numpy as np
import pytest

from neurocodec import container
from neurocodec.container import MAGIC, Container, Header, content_digest, is_ncd, pack, read, read_header, unpack
from neurocodec.errors import FormatError

WEIGHTS = hashlib.sha256(b"test weights").digest()


def make_text() -> bytes:
    words = ["entropy", "latent", "codec", "réseau", "比特", "quantize", "hyperprior", "rate"]
    return " ".join(f"{words[(i * 7) % len(words)]}{i % 13}" for i in range(120)).encode("utf-8")


def make_payload() -> tuple[bytes, list[bytes]]:
    """An original text and its payload: zlib-compressed pieces, with an empty chunk among them."""
    text = make_text()
    pieces = [text[i : i + 300] for i in range(0, len(text), 300)]
    chunks = [zlib.compress(p, 9) for p in pieces]
    chunks.insert(1, b"")
    return text, chunks


def make_header(**changes) -> Header:
    fields = dict(
        codec="zlib-text",
        weights_digest=WEIGHTS,
        modality="text",
        lossless=True,
        shape=(len(make_text()),),
        params={"level": 9, "piece": 300, "scale": 0.5, "tables": [1, 2, None], "opts": {"b": True, "a": "x"}},
        name="résumé 日本語.txt",
    )
    fields.update(changes)
    return Header(**fields)


@pytest.fixture(scope="module")
def sample() -> tuple[bytes, Header, list[bytes], bytes]:
    """A small lossless .ncd file: (blob, header, chunks, digest)."""
    text, chunks = make_payload()
    header = make_header()
    digest = content_digest(text)
    return pack(header, chunks, digest), header, chunks, digest


def split(blob: bytes) -> dict:
    """Offsets of the parts of a .ncd file, found by walking the layout independently of the reader."""
    (hlen,) = struct.unpack_from("<I", blob, 10)
    pos = 14 + hlen + 4
    chunks = []
    while True:
        (n,) = struct.unpack_from("<I", blob, pos)
        if n == 0xFFFFFFFF:
            break
        chunks.append(pos)
        pos += 4 + n + 4
    return {"header_len": hlen, "header": (14, 14 + hlen), "chunks": chunks, "end": pos, "trailer": pos + 4}


def with_header_json(blob: bytes, text: bytes, version: int = container.FORMAT_VERSION) -> bytes:
    """`blob` with its header replaced by the JSON `text` as `version` stores it (deflated in
    version 2), and a header CRC that matches."""
    parts = split(blob)
    stored = container._deflate(text) if version == 2 else text
    fields = struct.pack("<HI", version, len(stored)) + stored
    rest = blob[parts["header"][1] + 4 :]
    return MAGIC + fields + struct.pack("<I", zlib.crc32(fields)) + rest


def with_trailer(blob: bytes, count: int, has_digest: int, digest: bytes) -> bytes:
    """`blob` with its trailer replaced (and a trailer CRC that matches)."""
    start = split(blob)["trailer"]
    fields = struct.pack("<QB16s", count, has_digest, digest)
    return blob[:start] + fields + struct.pack("<I", zlib.crc32(fields))


def header_json(blob: bytes) -> bytes:
    start, end = split(blob)["header"]
    return container._inflate(blob[start:end]) if blob[8:10] == b"\x02\x00" else blob[start:end]


def header_doc(blob: bytes) -> dict:
    return json.loads(header_json(blob).decode("utf-8"))


def expect_format_error(blob: bytes) -> str:
    """The message of the FormatError that unpacking `blob` raises; any other outcome fails the test."""
    with pytest.raises(FormatError) as info:
        unpack(blob)
    message = str(info.value)
    assert message and "\n" not in message
    return message


# --- 1. round trips ------------------------------------------------------------------------


def test_round_trip_lossless(sample):
    blob, header, chunks, digest = sample
    box = unpack(blob)
    assert isinstance(box, Container)
    assert box.header == header
    assert box.header.name == "résumé 日本語.txt"
    assert box.header.weights_digest == WEIGHTS
    assert box.chunks == chunks and b"" in box.chunks
    assert box.content_digest == digest
    assert b"".join(zlib.decompress(c) for c in box.chunks if c) == make_text()
    assert content_digest(b"".join(zlib.decompress(c) for c in box.chunks if c)) == box.content_digest


def test_round_trip_lossy_zero_chunks_and_empty_chunk():
    header = make_header(modality="image", lossless=False, shape=(2, 3, 3), params={}, name="")
    for chunks in ([], [b""], [b"", b"\x00" * 5, b""]):
        box = unpack(pack(header, chunks))
        assert box.header == header
        assert box.chunks == chunks
        assert box.content_digest is None


def test_layout_matches_the_specification(sample):
    blob, header, chunks, digest = sample
    assert blob[:8] == b"\x89NCD\r\n\x1a\n"
    version, hlen = struct.unpack_from("<HI", blob, 8)
    assert version == container.FORMAT_VERSION == 2
    text = zlib.decompressobj(-15, container.HEADER_DICTIONARY).decompress(blob[14 : 14 + hlen])
    doc = json.loads(text)
    assert text == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert doc["weights_digest"] == WEIGHTS.hex() and doc["shape"] == [len(make_text())]
    assert doc["codec"] == "zlib-text" and doc["lossless"] is True and doc["name"] == header.name
    (crc,) = struct.unpack_from("<I", blob, 14 + hlen)
    assert crc == zlib.crc32(blob[8 : 14 + hlen])
    pos = 14 + hlen + 4
    for chunk in chunks:
        (n,) = struct.unpack_from("<I", blob, pos)
        assert blob[pos + 4 : pos + 4 + n] == chunk
        assert struct.unpack_from("<I", blob, pos + 4 + n)[0] == zlib.crc32(chunk)
        pos += 8 + n
    assert struct.unpack_from("<I", blob, pos)[0] == 0xFFFFFFFF
    count, has_digest, stored, tcrc = struct.unpack_from("<QB16sI", blob, pos + 4)
    assert (count, has_digest, stored) == (len(chunks), 1, digest)
    assert tcrc == zlib.crc32(blob[pos + 4 : pos + 4 + 25])
    assert len(blob) == pos + 4 + 25 + 4


def test_content_digest_is_blake2b_128():
    assert content_digest(b"abc") == hashlib.blake2b(b"abc", digest_size=16).digest()
    assert len(content_digest(b"")) == 16


def test_output_is_deterministic_and_canonical():
    text, chunks = make_payload()
    a = pack(make_header(params={"b": 1, "a": [1, 2]}), chunks, content_digest(text))
    b = pack(make_header(params={"a": (1, 2), "b": 1}), chunks, content_digest(text))
    assert a == b
    assert unpack(a).header.params == {"a": [1, 2], "b": 1}


def test_write_streams_chunks_and_counts_bytes(sample, tmp_path):
    blob, header, chunks, digest = sample
    path = tmp_path / "x.ncd"
    with open(path, "wb") as fp:
        n = container.write(fp, header, (c for c in chunks), digest)
    assert n == len(blob) == path.stat().st_size
    assert path.read_bytes() == blob
    with open(path, "rb") as fp:
        box = read(fp)
    assert box.chunks == chunks and box.content_digest == digest


# --- 2. truncation -------------------------------------------------------------------------


def test_truncation_at_every_offset(sample):
    blob = sample[0]
    assert len(blob) < 1000
    detected = 0
    for n in range(len(blob)):
        message = expect_format_error(blob[:n])
        if n >= len(MAGIC):
            assert message.startswith("truncated .ncd file"), (n, message)
        detected += 1
    assert detected == len(blob)
    assert expect_format_error(b"") == "not a neurocodec (.ncd) file"


def test_truncation_messages_name_the_part(sample):
    blob = sample[0]
    parts = split(blob)
    assert "the header" in expect_format_error(blob[: parts["header"][1]])
    second = parts["chunks"][2]
    assert expect_format_error(blob[: second + 6]) == "truncated .ncd file (ended inside chunk 2)"
    assert "before the end marker" in expect_format_error(blob[: parts["end"]])
    assert "the trailer" in expect_format_error(blob[: parts["trailer"] + 3])


def test_huge_chunk_length_is_a_truncation_not_an_allocation(sample):
    blob = sample[0]
    first = split(blob)["chunks"][0]
    bad = blob[:first] + struct.pack("<I", 0xFFFFFFFE) + blob[first + 4 :]
    assert expect_format_error(bad) == "truncated .ncd file (ended inside chunk 0)"


# --- 3. corruption -------------------------------------------------------------------------


def test_random_single_byte_changes_are_all_detected(sample):
    blob = sample[0]
    rng = np.random.default_rng(20240611)
    trials = 2000
    detected = 0
    positions = set()
    for _ in range(trials):
        pos = int(rng.integers(len(blob)))
        bad = bytearray(blob)
        bad[pos] = (bad[pos] + int(rng.integers(1, 256))) % 256
        assert bad[pos] != blob[pos]
        try:
            unpack(bytes(bad))
        except FormatError as e:
            assert "\n" not in str(e)
            detected += 1
            positions.add(pos)
    assert detected == trials
    assert len(positions) > 0.8 * len(blob)  # the trials reached (almost) every byte


def test_every_byte_of_every_part_is_protected(sample):
    """Exhaustively: each byte XOR 0x01 and XOR 0x80 is detected."""
    blob = sample[0]
    for pos in range(len(blob)):
        for flip in (0x01, 0x80):
            bad = bytearray(blob)
            bad[pos] ^= flip
            expect_format_error(bytes(bad))


def test_random_multi_byte_corruptions_are_detected(sample):
    blob = sample[0]
    rng = np.random.default_rng(7)
    trials = 300
    detected = 0
    for t in range(trials):
        bad = bytearray(blob)
        if t % 2:  # scattered bytes
            for pos in rng.choice(len(blob), size=int(rng.integers(2, 9)), replace=False):
                bad[pos] = (bad[pos] + int(rng.integers(1, 256))) % 256
        else:  # a burst of random bytes
            start = int(rng.integers(len(blob) - 16))
            burst = rng.integers(0, 256, size=int(rng.integers(2, 17)), dtype=np.uint8).tobytes()
            bad[start : start + len(burst)] = burst
            if bytes(bad) == blob:
                detected += 1
                continue
        try:
            unpack(bytes(bad))
        except FormatError:
            detected += 1
    assert detected == trials


# --- 4. specific bad files -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n" + b"\0" * 64, b"hello, world", b"\x00" * 100, b"NCD" + MAGIC],
    ids=["png", "text", "zeros", "shifted"],
)
def test_wrong_magic(data):
    assert expect_format_error(data) == "not a neurocodec (.ncd) file"


def test_other_version_gets_the_version_message(sample):
    blob = sample[0]
    v3 = with_header_json(blob, header_json(blob), version=3)
    expected = "unsupported .ncd format version 3 (this neurocodec reads versions 1, 2)"
    assert expect_format_error(v3) == expected
    # a future file whose remainder we cannot read at all
    assert expect_format_error(MAGIC + b"\x07\x00" + b"\xff" * 40) == (
        "unsupported .ncd format version 7 (this neurocodec reads versions 1, 2)"
    )
    assert expect_format_error(MAGIC + b"\x03\x00") == expected
    with pytest.raises(FormatError, match="version 3"):
        read_header(io.BytesIO(v3))


def test_version_1_files_read_as_before_and_version_2_is_smaller(sample):
    """Version 2 only deflates the header: the same file as version 1 (plain JSON) reads to
    the same header, chunks and digest, and writes are version 2."""
    blob = sample[0]
    v1 = with_header_json(blob, header_json(blob), version=1)
    assert unpack(v1) == unpack(blob)
    assert v1[8:10] == b"\x01\x00" and blob[8:10] == b"\x02\x00"
    assert len(blob) < len(v1) - 60


@pytest.mark.parametrize("stored, message", [
    (b"\xff\xff\xff", "not valid deflate data"),
    (container._deflate(b"{}")[:-1], "cut short or followed by more"),
    (container._deflate(b"{}") + b"\0", "cut short or followed by more"),
    (zlib.compress(b" " * (container.MAX_HEADER_SIZE + 1), 9)[2:-4], "over 1 MiB as JSON"),  # a 1 kB deflate bomb
])
def test_damaged_deflated_headers(sample, stored, message):
    blob = sample[0]
    fields = struct.pack("<HI", 2, len(stored)) + stored
    damaged = MAGIC + fields + struct.pack("<I", zlib.crc32(fields)) + blob[split(blob)["header"][1] + 4 :]
    assert message in expect_format_error(damaged)


def test_trailing_data(sample):
    blob = sample[0]
    message = "corrupted .ncd file: trailing data after the end"
    assert expect_format_error(blob + b"\0") == message
    assert expect_format_error(blob + blob) == message


def test_header_checksum_and_chunk_checksum_messages(sample):
    blob = sample[0]
    parts = split(blob)
    bad = bytearray(blob)
    bad[parts["header"][0] + 3] ^= 0x20
    assert expect_format_error(bytes(bad)) == "corrupted .ncd file: header checksum mismatch"
    bad = bytearray(blob)
    bad[parts["chunks"][2] + 6] ^= 0x01
    assert expect_format_error(bytes(bad)) == "corrupted .ncd file: checksum mismatch in chunk 2"


def test_oversized_header_length(sample):
    blob = sample[0]
    bad = blob[:10] + struct.pack("<I", 0x7FFFFFFF) + blob[14:]
    assert "header length" in expect_format_error(bad)


def _doc_changes():
    hexd = WEIGHTS.hex()
    return {
        "shape as a string": lambda d: d.update(shape="2x3"),
        "shape empty": lambda d: d.update(shape=[]),
        "shape of five": lambda d: d.update(shape=[1, 1, 1, 1, 1]),
        "shape negative": lambda d: d.update(shape=[-1]),
        "shape float": lambda d: d.update(shape=[3.0]),
        "shape bool": lambda d: d.update(shape=[True]),
        "shape too large": lambda d: d.update(shape=[2**48]),
        "missing codec": lambda d: d.pop("codec"),
        "unknown field": lambda d: d.update(extra=1),
        "codec not a string": lambda d: d.update(codec=5),
        "codec bad name": lambda d: d.update(codec="Bad Name"),
        "digest not hex": lambda d: d.update(weights_digest="z" * 64),
        "digest upper case": lambda d: d.update(weights_digest=hexd.upper()),
        "digest short": lambda d: d.update(weights_digest=hexd[:-2]),
        "digest as list": lambda d: d.update(weights_digest=list(WEIGHTS)),
        "modality unknown": lambda d: d.update(modality="audio"),
        "lossless as int": lambda d: d.update(lossless=1),
        "params a list": lambda d: d.update(params=[1]),
        "params null": lambda d: d.update(params=None),
        "name with slash": lambda d: d.update(name="../etc/passwd"),
        "name with NUL": lambda d: d.update(name="a\0b"),
        "name too long": lambda d: d.update(name="x" * 4097),
        "name a number": lambda d: d.update(name=3),
    }


@pytest.mark.parametrize("change", sorted(_doc_changes()))
def test_checksummed_header_with_wrong_fields(sample, change):
    blob = sample[0]
    doc = header_doc(blob)
    _doc_changes()[change](doc)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert expect_format_error(with_header_json(blob, text)).startswith("corrupted .ncd file: ")


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"[1,2,3]",
        b'"codec"',
        b"{not json}",
        b"\xff\xfe{}",
        b'{"codec":"a"',
        b"[" * 100000 + b"]" * 100000,
        b'{"params":' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
        b'{"params":{"x":NaN}}',
    ],
    ids=["empty", "list", "string", "bad-json", "bad-utf8", "cut", "deep-list", "deep-params", "nan"],
)
def test_checksummed_header_that_is_not_a_header(sample, text):
    assert expect_format_error(with_header_json(sample[0], text)).startswith("corrupted .ncd file: ")


def test_checksummed_header_edge_values(sample):
    blob = sample[0]
    doc = header_doc(blob)
    base = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # not canonical: spaces, unsorted keys, a duplicate key, an escaped non-ASCII name
    variants = [
        json.dumps(doc, sort_keys=True),
        json.dumps(dict(reversed(doc.items())), separators=(",", ":"), ensure_ascii=False),
        base[:-1] + ',"name":"other"}',
        json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True),
        base.replace('"params":{', '"params":{"deep":' + "[" * 40 + "]" * 40 + ","),
        base.replace('"params":{', '"params":{"x":1e999,'),
        base.replace('"name":"', '"name":"\\ud800'),
    ]
    for text in variants:
        assert text != base
        expect_format_error(with_header_json(blob, text.encode("utf-8")))
    # the canonical form itself is fine
    assert unpack(with_header_json(blob, base.encode("utf-8"))).header == sample[1]


def test_trailer_fields_are_checked(sample):
    blob, header, chunks, digest = sample
    n = len(chunks)
    assert unpack(with_trailer(blob, n, 1, digest)).content_digest == digest
    assert "counts" in expect_format_error(with_trailer(blob, n + 1, 1, digest))
    assert "counts" in expect_format_error(with_trailer(blob, n - 1, 1, digest))
    assert "invalid content digest" in expect_format_error(with_trailer(blob, n, 2, digest))
    assert "invalid content digest" in expect_format_error(with_trailer(blob, n, 0, digest))
    assert "lossless file without" in expect_format_error(with_trailer(blob, n, 0, bytes(16)))
    lossy = pack(make_header(lossless=False), chunks)
    assert "lossy file with" in expect_format_error(with_trailer(lossy, n, 1, digest))
    assert unpack(with_trailer(lossy, n, 0, bytes(16))).content_digest is None
    assert "invalid content digest" in expect_format_error(with_trailer(lossy, n, 0, digest))


# --- 5. read_header and is_ncd ---------------------------------------------------------------


def test_read_header_reads_only_the_header(sample):
    blob, header = sample[0], sample[1]
    parts = split(blob)
    fp = io.BytesIO(blob)
    assert read_header(fp) == header
    assert fp.tell() == parts["header"][1] + 4 == parts["chunks"][0]
    # chunks are not looked at: a corrupt chunk does not stop read_header
    bad = bytearray(blob)
    bad[parts["chunks"][0] + 5] ^= 0xFF
    assert read_header(io.BytesIO(bytes(bad))) == header
    with pytest.raises(FormatError, match="checksum mismatch in chunk 0"):
        read(io.BytesIO(bytes(bad)))
    with pytest.raises(FormatError, match="^not a neurocodec"):
        read_header(io.BytesIO(b"GIF89a" + bytes(30)))
    with pytest.raises(FormatError, match="^truncated"):
        read_header(io.BytesIO(blob[: parts["header"][1]]))


def test_is_ncd(sample):
    blob = sample[0]
    assert is_ncd(blob[:16]) and is_ncd(blob) and is_ncd(MAGIC)
    assert not is_ncd(b"") and not is_ncd(MAGIC[:7]) and not is_ncd(b"\x89PNG\r\n\x1a\n\0\0")
    assert not is_ncd(b"x" + MAGIC)


# --- 6. writer-side validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        dict(codec=""),
        dict(codec="Upper"),
        dict(codec="-lead"),
        dict(codec="a" * 65),
        dict(codec="a b"),
        dict(codec="codec\n"),
        dict(codec=None),
        dict(weights_digest=bytes(31)),
        dict(weights_digest=WEIGHTS.hex()),
        dict(modality="audio"),
        dict(modality=None),
        dict(lossless=1),
        dict(shape=()),
        dict(shape=(1, 2, 3, 4, 5)),
        dict(shape=(-1,)),
        dict(shape=(2.0,)),
        dict(shape=(True,)),
        dict(shape=(2**48,)),
        dict(shape="12"),
        dict(params=[1]),
        dict(params={1: "a"}),
        dict(params={"a": {1, 2}}),
        dict(params={"a": float("nan")}),
        dict(params={"a": float("inf")}),
        dict(params={"a": b"bytes"}),
        dict(params={"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
        dict(params={"big": "x" * (1 << 20)}),
        dict(name="dir/file.png"),
        dict(name="a\0b"),
        dict(name="é" * 2048 + "a"),
        dict(name="\ud800"),
        dict(name=None),
    ],
    ids=lambda changes: ascii(changes)[:40],
)
def test_header_validation(changes):
    with pytest.raises(ValueError):
        make_header(**changes)


def test_header_limits_that_are_allowed():
    assert make_header(name="é" * 2048).name == "é" * 2048  # exactly 4096 bytes
    assert make_header(name="").name == ""
    assert make_header(codec="a" * 64).codec == "a" * 64
    assert make_header(shape=[0, 2**48 - 1, 1, np.int64(3)]).shape == (0, 2**48 - 1, 1, 3)
    assert make_header(weights_digest=bytearray(WEIGHTS)).weights_digest == WEIGHTS


def test_pack_checks_its_arguments(sample):
    blob, header, chunks, digest = sample
    with pytest.raises(ValueError):
        pack(header, chunks)  # lossless without a digest
    with pytest.raises(ValueError):
        pack(header, chunks, digest[:8])
    with pytest.raises(ValueError):
        pack(make_header(lossless=False), chunks, digest)  # lossy with a digest
    with pytest.raises(TypeError):
        pack(header, ["not bytes"], digest)
    with pytest.raises(TypeError):
        pack({"codec": "x"}, chunks, digest)
    assert pack(header, [bytearray(c) for c in chunks], bytearray(digest)) == blob


def test_shape_the_payload_cannot_hold(sample):
    """A checksummed header claiming more than 2**20 bytes (or pixels) per payload byte, plus
    2**20, is refused by the reader before any codec sees it (issue 16: memory and CPU bombs)."""
    blob, header, chunks, digest = sample
    payload = sum(map(len, chunks))
    room = container.limits.SAMPLES_PER_PAYLOAD_BYTE * (payload + 1)
    assert unpack(pack(make_header(shape=(room,)), chunks, digest)).header.shape == (room,)
    message = expect_format_error(pack(make_header(shape=(room + 1,)), chunks, digest))
    assert message == f"corrupted .ncd file: the header claims {room + 1:,} bytes, more than {payload:,} bytes of coded data can hold"
    image = make_header(modality="image", lossless=False, shape=(1 << 20, 1 << 20, 3))
    assert "claims 1,099,511,627,776 pixels" in expect_format_error(pack(image, [b"", b"\0" * 100]))
    assert unpack(pack(make_header(modality="image", lossless=False, shape=(1024, 1024, 3)), [])).chunks == []
