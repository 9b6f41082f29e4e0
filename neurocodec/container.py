"""The .ncd container: the file format every neurocodec codec writes and reads.

Layout (integers little-endian)::

    magic           8 bytes   b"\\x89NCD\\r\\n\\x1a\\n"
    version         u16       FORMAT_VERSION (2; version 1 files are read too)
    header length   u32       at most 1 MiB
    header          bytes     canonical UTF-8 JSON of the Header (sorted keys, no spaces); in
                              version 2 raw-deflated against HEADER_DICTIONARY, in version 1 as is
    header CRC      u32       zlib.crc32 of version + header length + header
    chunks, each:
        length      u32       payload size; 0xFFFFFFFF is reserved for the end marker
        payload     bytes
        CRC         u32       zlib.crc32 of the payload
    end marker      u32       0xFFFFFFFF
    trailer:
        count       u64       number of chunks
        has digest  u8        1 for lossless files, 0 for lossy ones
        digest      16 bytes  blake2b-128 of the original (zeros when there is none)
        CRC         u32       zlib.crc32 of count + has digest + digest

Readers are strict: a file that is truncated, corrupted, of another format version or followed
by trailing data raises neurocodec.errors.FormatError with a one-line message. So does a file
whose header claims more pixels or bytes than its payload can hold (at most 2**20 per payload
byte, plus 2**20: see neurocodec.limits.SAMPLES_PER_PAYLOAD_BYTE).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import operator
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterable

from . import limits
from .errors import FormatError

MAGIC = b"\x89NCD\r\n\x1a\n"
FORMAT_VERSION = 2  # what the writer writes
READ_VERSIONS = (1, 2)
# Version 2 deflates the header against this preset dictionary, fixed for as long as version 2
# is read: headers of every shipped family without their digests, the most frequent last
# (nearest). A lossy Kodak file's header falls from about 230 bytes to about 80: 2-3 % of a
# file at 0.13 bpp, and most of a short text's file.
HEADER_DICTIONARY = (
    b'{"codec":"bitsback","lossless":true,"modality":"image","name":"","params":{"tile":128,"tiles_per_chunk":128},'
    b'"shape":[512,768,3],"weights_digest":"'
    b'{"codec":"idf","lossless":true,"modality":"image","name":"","params":{"tile":512},"shape":[768,512,3],"weights_digest":"'
    b'{"codec":"pixelcnn","lossless":true,"modality":"image","name":"","params":{"group":4,"stripe":1024,"tile_width":1024},'
    b'"shape":[512,768,3],"weights_digest":"'
    b'{"codec":"vqlossless","lossless":true,"modality":"image","name":"","params":{"adapt":true,"stages":4,"tile":1024},'
    b'"shape":[512,768,3],"weights_digest":"'
    b'{"codec":"vq","lossless":false,"modality":"image","name":"","params":{"quality":50,"symbols":"","tile":1024},'
    b'"shape":[768,512,3],"weights_digest":"'
    b'{"codec":"hyperprior","lossless":false,"modality":"image","name":"","params":{"quality":50,"tile":1024},'
    b'"shape":[512,768,3],"weights_digest":"'
    b'{"codec":"perceptual","lossless":false,"modality":"image","name":"","params":{"quality":50,"symbols":"","tile":1024},'
    b'"shape":[768,512,3],"weights_digest":"'
    b'{"codec":"text","lossless":true,"modality":"text","name":"","params":{"chunk":1024,"context":{"classes":true,'
    b'"confirm":true,"init":0.3,"match":8,"orders":[3,5,7],"rate":0.02,"rows_log2":18},"group":256},"shape":[8192],'
    b'"weights_digest":"'
    b'{"codec":"context","lossless":false,"modality":"image","name":"","params":{"quality":50,"symbols":"","tile":1024},'
    b'"shape":[512,768,3],"weights_digest":"'
)

MAX_HEADER_SIZE = 1 << 20  # bytes of header JSON
MAX_NAME_SIZE = 4096  # bytes of UTF-8
MAX_DIMENSION = 1 << 48
MAX_PARAMS_DEPTH = 32
DIGEST_SIZE = 16
END_MARKER = 0xFFFFFFFF

_CODEC_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_HEADER_FIELDS = {"codec", "weights_digest", "modality", "lossless", "shape", "params", "name"}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<QB16s")  # chunk count, has digest, digest
_READ_STEP = 1 << 20  # never ask a stream for more than this at once


@dataclass(frozen=True)
class Header:
    """What a decoder needs besides the payload. Invalid values raise ValueError."""

    codec: str  # registry name of the codec
    weights_digest: bytes  # 32 bytes identifying the weights the file was encoded with
    modality: str  # "image" or "text"
    lossless: bool
    shape: tuple[int, ...]  # HxWx3 of an image, (length,) of a text
    params: dict  # codec parameters, a small JSON object
    name: str = ""  # original file name, without directories

    def __post_init__(self) -> None:
        if not (isinstance(self.codec, str) and _CODEC_NAME.fullmatch(self.codec)):
            raise ValueError(f"codec name must match {_CODEC_NAME.pattern}, got {_short(self.codec)}")
        digest = self.weights_digest
        if not (isinstance(digest, (bytes, bytearray)) and len(digest) == 32):
            raise ValueError(f"weights_digest must be 32 bytes, got {_short(digest)}")
        object.__setattr__(self, "weights_digest", bytes(digest))
        if not (isinstance(self.modality, str) and self.modality in ("image", "text")):
            raise ValueError(f"modality must be 'image' or 'text', got {_short(self.modality)}")
        if not isinstance(self.lossless, bool):
            raise ValueError(f"lossless must be a bool, got {_short(self.lossless)}")
        object.__setattr__(self, "shape", _checked_shape(self.shape))
        if not isinstance(self.params, dict):
            raise ValueError(f"params must be a dict, got {type(self.params).__name__}")
        object.__setattr__(self, "params", _json_copy(self.params, 0))
        _check_name(self.name)
        if len(_header_json(self)) > MAX_HEADER_SIZE:
            raise ValueError("header is over 1 MiB as JSON; params must stay small")


@dataclass(frozen=True)
class Container:
    """A read .ncd file: its header, its payload chunks and, for lossless files, the original's digest."""

    header: Header
    chunks: list[bytes]
    content_digest: bytes | None


def content_digest(data: bytes) -> bytes:
    """The 16-byte checksum of an original that lossless files carry."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def is_ncd(prefix: bytes) -> bool:
    """Whether data starting with `prefix` looks like a .ncd file (checks the magic number only)."""
    return bytes(prefix[: len(MAGIC)]) == MAGIC


# --- writing ---------------------------------------------------------------------------


def pack(header: Header, chunks: Iterable[bytes], content_digest: bytes | None = None) -> bytes:
    """The .ncd file holding `chunks`, as bytes."""
    buf = io.BytesIO()
    write(buf, header, chunks, content_digest)
    return buf.getvalue()


def write(fp: BinaryIO, header: Header, chunks: Iterable[bytes], content_digest: bytes | None = None) -> int:
    """Stream a .ncd file to the binary file `fp`; return the number of bytes written.

    Lossless files must come with the original's `content_digest` (16 bytes), lossy ones without.
    """
    if not isinstance(header, Header):
        raise TypeError(f"header must be a container.Header, got {type(header).__name__}")
    if header.lossless:
        if not (isinstance(content_digest, (bytes, bytearray)) and len(content_digest) == DIGEST_SIZE):
            raise ValueError(f"a lossless file needs a {DIGEST_SIZE}-byte content digest, got {_short(content_digest)}")
    elif content_digest is not None:
        raise ValueError("a lossy file carries no content digest")

    stored = _deflate(_header_json(header))
    fields = _U16.pack(FORMAT_VERSION) + _U32.pack(len(stored)) + stored
    written = _put(fp, MAGIC + fields + _U32.pack(zlib.crc32(fields)))

    count = 0
    for chunk in chunks:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"chunks must be bytes, got {type(chunk).__name__}")
        chunk = bytes(chunk)
        if len(chunk) >= END_MARKER:
            raise ValueError(f"chunk {count} is too large ({len(chunk)} bytes; the limit is 4 GiB - 2)")
        written += _put(fp, _U32.pack(len(chunk)))
        written += _put(fp, chunk)
        written += _put(fp, _U32.pack(zlib.crc32(chunk)))
        count += 1

    has_digest = content_digest is not None
    trailer = _TRAILER.pack(count, has_digest, bytes(content_digest) if has_digest else bytes(DIGEST_SIZE))
    written += _put(fp, _U32.pack(END_MARKER) + trailer + _U32.pack(zlib.crc32(trailer)))
    return written


def _put(fp: BinaryIO, data: bytes) -> int:
    fp.write(data)
    return len(data)


def _deflate(text: bytes) -> bytes:
    """A version 2 header: `text` raw-deflated against HEADER_DICTIONARY."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    return packer.compress(text) + packer.flush()


def _inflate(stored: bytes) -> bytes:
    """The JSON of a version 2 header, never more than MAX_HEADER_SIZE bytes of it."""
    unpacker = zlib.decompressobj(-15, HEADER_DICTIONARY)
    try:
        text = unpacker.decompress(stored, MAX_HEADER_SIZE + 1)
    except zlib.error:
        raise FormatError("corrupted .ncd file: header is not valid deflate data") from None
    if len(text) > MAX_HEADER_SIZE:
        raise FormatError("corrupted .ncd file: header is over 1 MiB as JSON")
    if not unpacker.eof or unpacker.unused_data:
        raise FormatError("corrupted .ncd file: header deflate data is cut short or followed by more")
    return text


def _header_json(header: Header) -> bytes:
    doc = {
        "codec": header.codec,
        "weights_digest": header.weights_digest.hex(),
        "modality": header.modality,
        "lossless": header.lossless,
        "shape": list(header.shape),
        "params": header.params,
        "name": header.name,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


# --- reading ---------------------------------------------------------------------------


def unpack(blob: bytes) -> Container:
    """Read a whole .ncd file from bytes; anything after its end is an error."""
    return read(io.BytesIO(blob))


def read(fp: BinaryIO) -> Container:
    """Read a .ncd file from the binary file `fp`, which must end where the .ncd file ends."""
    header = read_header(fp)

    chunks: list[bytes] = []
    while True:
        i = len(chunks)
        word = _read_up_to(fp, 4)
        if not word:
            raise FormatError(f"truncated .ncd file (ended after {i} chunks, before the end marker)")
        if len(word) < 4:
            raise FormatError(f"truncated .ncd file (ended inside chunk {i})")
        (length,) = _U32.unpack(word)
        if length == END_MARKER:
            break
        payload = _read_exactly(fp, length, f"chunk {i}")
        (crc,) = _U32.unpack(_read_exactly(fp, 4, f"chunk {i}"))
        if crc != zlib.crc32(payload):
            raise FormatError(f"corrupted .ncd file: checksum mismatch in chunk {i}")
        chunks.append(payload)

    fields = _read_exactly(fp, _TRAILER.size, "the trailer")
    (crc,) = _U32.unpack(_read_exactly(fp, 4, "the trailer"))
    if crc != zlib.crc32(fields):
        raise FormatError("corrupted .ncd file: trailer checksum mismatch")
    count, has_digest, digest = _TRAILER.unpack(fields)
    if count != len(chunks):
        raise FormatError(f"corrupted .ncd file: the trailer counts {count} chunks, the file holds {len(chunks)}")
    if has_digest not in (0, 1) or (has_digest == 0 and digest != bytes(DIGEST_SIZE)):
        raise FormatError("corrupted .ncd file: invalid content digest field in the trailer")
    if has_digest != header.lossless:
        kind = "lossless file without" if header.lossless else "lossy file with"
        raise FormatError(f"corrupted .ncd file: {kind} a content digest")
    if fp.read(1):
        raise FormatError("corrupted .ncd file: trailing data after the end")
    limits.check_payload(header.modality, header.shape, sum(map(len, chunks)))
    return Container(header, chunks, digest if has_digest else None)


def read_header(fp: BinaryIO) -> Header:
    """Read the magic number, version and header of a .ncd file; leave `fp` at the first chunk."""
    magic = _read_up_to(fp, len(MAGIC))
    if magic != MAGIC:
        if magic and MAGIC.startswith(magic):
            raise FormatError("truncated .ncd file (ended inside the magic number)")
        raise FormatError("not a neurocodec (.ncd) file")
    version_field = _read_exactly(fp, 2, "the header")
    (version,) = _U16.unpack(version_field)
    if version not in READ_VERSIONS:
        raise FormatError(
            f"unsupported .ncd format version {version} (this neurocodec reads versions "
            f"{', '.join(map(str, READ_VERSIONS))})"
        )
    length_field = _read_exactly(fp, 4, "the header")
    (length,) = _U32.unpack(length_field)
    if length > MAX_HEADER_SIZE:
        raise FormatError(f"corrupted .ncd file: header length {length} is over the 1 MiB limit")
    stored = _read_exactly(fp, length, "the header")
    (crc,) = _U32.unpack(_read_exactly(fp, 4, "the header"))
    if crc != zlib.crc32(version_field + length_field + stored):
        raise FormatError("corrupted .ncd file: header checksum mismatch")
    return _parse_header(stored if version == 1 else _inflate(stored))


def _parse_header(text: bytes) -> Header:
    """The Header in checksummed JSON `text`, refusing anything our writer would not produce."""
    try:
        doc = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise FormatError("corrupted .ncd file: header is not UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise FormatError("corrupted .ncd file: header is not a JSON object")
    missing, unknown = _HEADER_FIELDS - doc.keys(), doc.keys() - _HEADER_FIELDS
    if missing:
        raise FormatError(f"corrupted .ncd file: header lacks {', '.join(sorted(missing))}")
    if unknown:
        raise FormatError(f"corrupted .ncd file: unknown header field {_short(sorted(unknown)[0])}")
    digest = doc["weights_digest"]
    if not (isinstance(digest, str) and _HEX_DIGEST.fullmatch(digest)):
        raise FormatError("corrupted .ncd file: weights digest is not 64 lowercase hex digits")
    shape = doc["shape"]
    try:
        header = Header(
            codec=doc["codec"],
            weights_digest=bytes.fromhex(digest),
            modality=doc["modality"],
            lossless=doc["lossless"],
            shape=tuple(shape) if isinstance(shape, list) else shape,
            params=doc["params"],
            name=doc["name"],
        )
    except (ValueError, TypeError, RecursionError) as e:
        raise FormatError(f"corrupted .ncd file: invalid header ({e})") from None
    if _header_json(header) != text:
        raise FormatError("corrupted .ncd file: header is not in canonical form")
    return header


def _read_up_to(fp: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes, fewer only at the end of `fp`.

    Reads in steps of at most 1 MiB, so a corrupt length costs no more memory than the data
    that is really there.
    """
    parts = []
    while n > 0:
        part = fp.read(min(n, _READ_STEP))
        if not part:
            break
        if not isinstance(part, (bytes, bytearray)):
            raise TypeError(f"a .ncd file must be read from a binary file, got {type(part).__name__} from read()")
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _read_exactly(fp: BinaryIO, n: int, where: str) -> bytes:
    data = _read_up_to(fp, n)
    if len(data) < n:
        raise FormatError(f"truncated .ncd file (ended inside {where})")
    return data


# --- header validation -----------------------------------------------------------------


def _checked_shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or not 1 <= len(shape) <= 4:
        raise ValueError(f"shape must be a tuple of 1 to 4 ints, got {_short(shape)}")
    dims = []
    for d in shape:
        try:
            if isinstance(d, bool):
                raise TypeError
            d = operator.index(d)
        except TypeError:
            raise ValueError(f"shape must hold ints, got {_short(shape)}") from None
        if not 0 <= d < MAX_DIMENSION:
            raise ValueError(f"shape sizes must be from 0 to 2**48 - 1, got {_short(shape)}")
        dims.append(d)
    return tuple(dims)


def _json_copy(value: Any, depth: int) -> Any:
    """A plain copy of a JSON value (tuples become lists); ValueError for anything else."""
    if depth > MAX_PARAMS_DEPTH:
        raise ValueError(f"params are nested more than {MAX_PARAMS_DEPTH} deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"params must hold finite numbers, got {value!r}")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_json_copy(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"params keys must be strings, got {_short(k)}")
            out[k] = _json_copy(v, depth + 1)
        return out
    raise ValueError(f"params must hold JSON values, got {type(value).__name__}")


def _check_name(name: Any) -> None:
    if not isinstance(name, str):
        raise ValueError(f"name must be a str, got {type(name).__name__}")
    if "/" in name or "\0" in name:
        raise ValueError(f"name must be a bare file name without '/' or NUL, got {_short(name)}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"name is not valid Unicode: {_short(name)}") from None
    if size > MAX_NAME_SIZE:
        raise ValueError(f"name is {size} bytes of UTF-8, over the {MAX_NAME_SIZE}-byte limit")


def _short(value: Any, limit: int = 60) -> str:
    """A one-line repr of `value`, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
