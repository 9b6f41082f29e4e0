"""Streams: .ncd data written and read block by block, in memory that does not grow with it.

A .ncd file states its original's length in its header, before the payload, so one .ncd file
cannot be written before the whole input has been seen. A stream is therefore a sequence of
complete .ncd files (members), as gzip's members are, each holding one block of the input:

    start mark   a member without payload: shape (0,), params {"stream": "start", "block": B},
                 and the original's name
    blocks       members exactly as `codec.encode(block)` writes them, each of 1 to B bytes
    end mark     a member without payload: shape (0,), params {"stream": "end", "blocks": n,
                 "bytes": total} and, for a lossless codec, "digest": the blake2b-128 of the
                 whole original

B is BLOCK_SIZE, 2 MiB: one group of the text codec (256 chunks of 8 KiB, each group coded
independently from fresh states and statistics), so a full block codes to the same payload
as the same 2 MiB do inside a whole-file encode, and a stream costs about 200 bytes per block
more than one .ncd file. An input of at most one block is written as one plain .ncd file,
byte for byte what `neurocodec.compress` writes: small inputs are unchanged by streams.

Readers take a plain .ncd file (which must end after its one member) or a stream, which must
end with an end mark whose block count, length and digest match what was decoded: a stream
cut at a member boundary, or with members dropped, repeated or reordered, is refused with
FormatError (after its blocks have been decoded, as gzip finds a bad CRC at the end). Every
member is also checked on its own (its checksums, and the content digest of lossless codecs).
A block member may hold at most B bytes and take at most 2 B + 2 MiB, so a damaged or
hostile stream cannot make a reader hold more than that at once. Streams hold text (byte
strings) only; the MAX_TEXT_BYTES limit applies to each block, not to a stream's total.

    with neurocodec.open("big.txt.ncd", "wb") as f:      # codec: the default text codec
        for line in source:
            f.write(line)
    with neurocodec.open("big.txt.ncd", "rb") as f:
        first = f.read(100)
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import struct
from typing import Any, BinaryIO, Iterator

from . import container
from .errors import FormatError, InputError

BLOCK_SIZE = 2 << 20  # bytes of input per member (see above)
MAX_BLOCK = 64 << 20  # the largest block a reader accepts in a start mark
_STEP = 1 << 20  # never ask a file for more than this at once
_TRAILER_SIZE = 8 + 1 + container.DIGEST_SIZE + 4  # count, has digest, digest, CRC (container's layout)
_U32 = struct.Struct("<I")


# --- marks -----------------------------------------------------------------------------


def _mark(codec, params: dict, name: str = "") -> bytes:
    header = container.Header(
        codec=codec.name,
        weights_digest=codec.weights_digest,
        modality="text",
        lossless=codec.lossless,
        shape=(0,),
        params=params,
        name=name,
    )
    return container.pack(header, [], container.content_digest(b"") if codec.lossless else None)


def mark_kind(header: container.Header) -> str | None:
    """"start" or "end" for a stream's marks, None for any other member."""
    kind = header.params.get("stream")
    if kind is None or header.shape != (0,) or header.modality != "text":
        return None
    return kind if kind in ("start", "end") else "?"


# --- writing ---------------------------------------------------------------------------


class Writer(io.BufferedIOBase):
    """A binary file object that codes what is written to it into `fp`, block by block.

    `codec` names a text codec (default: the default text codec; with `lossless`, the best
    lossless one); `name` is stored as the original's name; `quality` and `effort` go to each
    block's encode. Nothing reaches `fp` before a
    block is complete or the writer is closed, and closing writes the rest: close it (or use
    it in a `with` block), or the output is incomplete; a `with` block left by an exception
    writes no more (`abandon`). Closing closes `fp` only if `close_fp`."""

    def __init__(self, fp: BinaryIO, codec: str | None = None, quality: int | None = None, *,
                 lossless: bool = False, name: str = "", block_size: int | None = None, close_fp: bool = False,
                 effort: int = 0):
        from . import api

        block = BLOCK_SIZE if block_size is None else block_size
        if isinstance(block, bool) or not isinstance(block, int) or not 1 <= block <= MAX_BLOCK:
            raise ValueError(f"block_size must be an int from 1 to {MAX_BLOCK}, got {block!r}")
        self._codec = api.choose_codec("text", codec, lossless)
        if self._codec.modality != "text":
            raise InputError(f"codec '{self._codec.name}' codes images; streams hold text (byte strings)")
        try:
            container._check_name(name)
        except ValueError as e:
            raise InputError(str(e)) from None
        self._fp, self._close_fp = fp, close_fp
        self._quality, self._effort, self._name, self._block = quality, effort, name, block
        self._buf = bytearray()
        self._blocks = 0  # block members written
        self._hash = hashlib.blake2b(digest_size=container.DIGEST_SIZE)
        self.bytes_in = 0  # bytes written to this object
        self.bytes_out = 0  # bytes written to fp

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed neurocodec stream")
        view = whole = memoryview(data).cast("B")
        n = len(view)
        while view:
            if len(self._buf) == self._block:  # more follows a full block: it is not the last
                self._emit_block()
            take = self._block - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
        self.bytes_in += n
        self._hash.update(whole)
        return n

    def _put(self, member: bytes) -> None:
        self._fp.write(member)
        self.bytes_out += len(member)

    def _emit_block(self) -> None:
        member = self._codec.encode(bytes(self._buf), quality=self._quality, effort=self._effort)  # may refuse: nothing written yet
        if self._blocks == 0:
            self._put(_mark(self._codec, {"stream": "start", "block": self._block}, self._name))
        self._put(member)
        self._blocks += 1
        self._buf.clear()
        self._fp.flush()  # a reader at the other end of a pipe sees each block as it is done

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # what was written is incomplete: no end mark, so readers refuse it as truncated
            self.abandon()

    def abandon(self) -> None:
        """Close without writing the rest or the end mark (a stream already begun is left
        truncated, which readers refuse)."""
        if not self.closed:
            self._buf = bytearray()
            super().close()
            if self._close_fp:
                self._fp.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._blocks == 0:  # at most one block: one plain .ncd file
                self._put(self._codec.encode(bytes(self._buf), quality=self._quality, name=self._name, effort=self._effort))
            else:
                if self._buf:
                    self._emit_block()
                end = {"stream": "end", "blocks": self._blocks, "bytes": self.bytes_in}
                if self._codec.lossless:
                    end["digest"] = self._hash.hexdigest()
                self._put(_mark(self._codec, end))
            self._fp.flush()
        finally:
            self._buf = bytearray()
            super().close()
            if self._close_fp:
                self._fp.close()


def compress_bytes(data: bytes, codec: str | None = None, quality: int | None = None, *, lossless: bool = False,
                   name: str = "", block_size: int | None = None, effort: int = 0) -> bytes:
    """What a Writer writes for `data`: one .ncd file up to one block, a stream above."""
    buf = io.BytesIO()
    with Writer(buf, codec, quality, lossless=lossless, name=name, block_size=block_size, effort=effort) as w:
        w.write(data)
    return buf.getvalue()


# --- reading ---------------------------------------------------------------------------


class _Recorder:
    """Reads from `fp`, keeping what it read (after `prefix`, which it gives back first)."""

    def __init__(self, fp: BinaryIO, prefix: bytes = b"", limit: int | None = None, what: str = ""):
        self.fp, self.pending, self.limit, self.what = fp, prefix, limit, what
        self.data = bytearray()

    def read(self, n: int = -1) -> bytes:
        if self.pending:
            n = len(self.pending) if n is None or n < 0 else n
            part, self.pending = self.pending[:n], self.pending[n:]
        else:
            part = self.fp.read(n)
            if not isinstance(part, (bytes, bytearray)):
                raise TypeError(f"a .ncd file must be read from a binary file, got {type(part).__name__} from read()")
        self.data += part
        if self.limit is not None and len(self.data) > self.limit:
            raise FormatError(f"corrupted .ncd stream: {self.what} is over {self.limit:,} bytes")
        return part

    def take(self, n: int) -> bool:
        """Read `n` bytes in steps of at most 1 MiB; False if the file ended first."""
        while n > 0:
            part = self.read(min(n, _STEP))
            if not part:
                return False
            n -= len(part)
        return True


class _Chain(io.RawIOBase):
    """`prefix`, then the rest of `fp`."""

    def __init__(self, prefix: bytes, fp: BinaryIO):
        self.prefix, self.fp = memoryview(prefix), fp

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            n = len(self.prefix) if n is None or n < 0 else n
            part, self.prefix = bytes(self.prefix[:n]), self.prefix[n:]
            return part
        return self.fp.read() if n is None or n < 0 else self.fp.read(n)


def _rest_of_member(rec: _Recorder) -> container.Container:
    """Read the rest of the member whose header `rec` has read, and check all of it with
    `container.unpack` (which words any truncation or damage)."""
    while True:
        at = len(rec.data)
        if not rec.take(4):
            break
        (length,) = _U32.unpack(rec.data[at : at + 4])
        if length == container.END_MARKER:
            rec.take(_TRAILER_SIZE)
            break
        if not rec.take(length + 4):
            break
    return container.unpack(bytes(rec.data))


def read_member(fp: BinaryIO, limit: int | None = None, what: str = "a member",
                check=None) -> container.Container | None:
    """The next whole member of a stream, checked; None where `fp` ends before it. Reading
    stops with FormatError past `limit` bytes, and `check(header)`, called before the
    payload is read, may refuse the member."""
    first = fp.read(1)
    if not first:
        return None
    rec = _Recorder(fp, first, limit, what)
    header = container.read_header(rec)
    if check is not None:
        check(header)
    return _rest_of_member(rec)


class Reader:
    """A plain .ncd file or a stream, read from the binary file `fp`.

    Creating it reads a plain file whole (checked as `container.read` checks it, and
    available as `.container`) or a stream's start mark only. `.header` is the plain file's
    header or the start mark's (the codec, the original's name); `.stream` tells which.
    `blocks()` decodes a stream (or a plain text file) block by block, checking the end mark."""

    def __init__(self, fp: BinaryIO):
        self.fp = fp
        rec = _Recorder(fp)
        header = container.read_header(rec)
        kind = mark_kind(header)
        self.header = header
        self.container: container.Container | None = None
        self.stream = kind == "start"
        if kind is None:  # a plain file: the container reader, from its first byte
            self.container = container.read(_Chain(bytes(rec.data), fp))
            return
        start = _rest_of_member(rec)
        if kind != "start" or start.chunks or set(header.params) != {"stream", "block"}:
            raise FormatError("corrupted .ncd stream: it does not begin with a valid start mark")
        block = header.params["block"]
        if isinstance(block, bool) or not isinstance(block, int) or not 1 <= block <= MAX_BLOCK:
            raise FormatError(f"corrupted .ncd stream: invalid block size {block!r} in its start mark")
        self.block = block

    def members(self) -> Iterator[container.Container]:
        """A stream's block members, read and checked but not decoded, then its end mark
        (checked against them); a plain file's one container."""
        if not self.stream:
            yield self.container
            return
        count = total = 0
        h0 = self.header

        def check(h: container.Header) -> None:  # from the header, before the payload is read
            kind = mark_kind(h)
            if kind == "start" or kind == "?":
                raise FormatError(f"corrupted .ncd stream: a second start mark after block {count}")
            if (h.codec, h.weights_digest, h.modality, h.lossless) != (h0.codec, h0.weights_digest, "text", h0.lossless):
                raise FormatError(f"corrupted .ncd stream: block {count + 1} was not written by its start mark's codec")
            if kind is None and not (len(h.shape) == 1 and 1 <= h.shape[0] <= self.block):
                raise FormatError(f"corrupted .ncd stream: block {count + 1} holds {h.shape[0]:,} bytes, "
                                  f"its blocks at most {self.block:,}")

        while True:
            box = read_member(self.fp, 2 * self.block + (2 << 20), f"block {count + 1}", check)
            if box is None:
                raise FormatError(f"truncated .ncd stream (ended after {count} blocks, before its end mark)")
            if mark_kind(box.header) == "end":
                self._check_end(box, count, total)
                return
            count += 1
            total += box.header.shape[0]
            yield box

    def _check_end(self, box: container.Container, count: int, total: int) -> None:
        p = box.header.params
        keys = {"stream", "blocks", "bytes"} | ({"digest"} if self.header.lossless else set())
        if box.chunks or set(p) != keys:
            raise FormatError("corrupted .ncd stream: invalid end mark")
        if any(isinstance(p[k], bool) or not isinstance(p[k], int) for k in ("blocks", "bytes")) \
                or not isinstance(p.get("digest", ""), str):
            raise FormatError("corrupted .ncd stream: invalid end mark")
        if p["blocks"] != count or p["bytes"] != total:
            raise FormatError(
                f"corrupted .ncd stream: the end mark counts {p['blocks']} blocks of {p['bytes']} bytes in all, "
                f"the stream holds {count} blocks of {total} bytes"
            )
        self._expected_digest = p.get("digest")
        if self.fp.read(1):
            raise FormatError("corrupted .ncd stream: trailing data after its end mark")

    def blocks(self) -> Iterator[bytes]:
        """The original, decoded block by block (a plain text file: in one block)."""
        from . import api

        if self.header.modality != "text":
            raise InputError("this .ncd file holds an image, not a byte string: use neurocodec.decompress")
        digest = hashlib.blake2b(digest_size=container.DIGEST_SIZE)
        self._expected_digest = None
        for box in self.members():
            data = bytes(api.decode_container(box))
            digest.update(data)
            yield data
        if self._expected_digest is not None and digest.hexdigest() != self._expected_digest:
            raise FormatError("corrupted .ncd stream: its blocks are not the original's, in its order "
                              "(the end mark's digest does not match)")


def decompress_bytes(blob: bytes) -> Any:
    """What a plain .ncd file or a stream (whole, in memory) holds."""
    from . import api

    reader = Reader(io.BytesIO(blob))
    if reader.stream:
        return b"".join(reader.blocks())
    return api.decode_container(reader.container)


class _BlockIO(io.RawIOBase):
    """The decoded bytes of a Reader's blocks, as a raw file (io.BufferedReader wraps it)."""

    def __init__(self, fp: BinaryIO, close_fp: bool):
        self._fp, self._close_fp = fp, close_fp
        self._blocks: Iterator[bytes] | None = None
        self._block = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._blocks is None:
            self._blocks = Reader(self._fp).blocks()
        while not self._block:
            data = next(self._blocks, None)
            if data is None:
                return 0
            self._block = memoryview(data)
        n = min(len(b), len(self._block))
        b[:n] = self._block[:n]
        self._block = self._block[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._blocks = None
            super().close()
            if self._close_fp:
                self._fp.close()


# --- neurocodec.open --------------------------------------------------------------------


def open(file: str | os.PathLike | BinaryIO, mode: str = "rb", codec: str | None = None, quality: int | None = None, *,
         lossless: bool = False, name: str | None = None, block_size: int | None = None,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None):
    """A file object over a .ncd file or stream, as `gzip.open` gives one over a .gz file.

    `file` is a path or a binary file object. Modes: "rb" (or "r") reads what a plain .ncd
    text file or a stream holds; "wb" (or "w") and "xb" (or "x") write a stream (one plain
    .ncd file if at most one block is written) with the text codec `codec` (default: the
    default text codec); "rt", "wt" and "xt" do the same through io.TextIOWrapper with
    `encoding`, `errors` and `newline`. `name` is the original's name stored in the file
    (default: none). Appending is not supported. Memory holds one block (BLOCK_SIZE, 2 MiB),
    whatever the length written or read."""
    if not isinstance(mode, str) or mode.replace("b", "").replace("t", "") not in ("r", "w", "x") \
            or len(set(mode)) != len(mode) or ("b" in mode and "t" in mode):
        raise ValueError(f"invalid mode {mode!r}: use 'rb', 'wb' or 'xb' (or 'rt', 'wt', 'xt')")
    text = "t" in mode
    if not text and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("encoding, errors and newline are for text modes ('rt', 'wt', 'xt') only")
    reading = "r" in mode
    if reading and (codec is not None or quality is not None or lossless or name is not None or block_size is not None):
        raise ValueError("codec, quality, lossless, name and block_size are for writing; a reader takes them from the file")
    owned = isinstance(file, (str, bytes, os.PathLike))
    if not owned and not (hasattr(file, "read") if reading else hasattr(file, "write")):
        raise TypeError(f"file must be a path or a binary file object, got {type(file).__name__}")
    if not reading:  # an unknown codec or a bad argument is refused before any file is made
        from . import api

        codec = api.choose_codec("text", codec, lossless)
        Writer(io.BytesIO(), codec, quality, name=name or "", block_size=block_size).abandon()
    fp = builtins.open(file, mode.replace("t", "").replace("b", "") + "b") if owned else file
    if reading:
        binary: io.IOBase = io.BufferedReader(_BlockIO(fp, owned), BLOCK_SIZE // 4)
    else:
        binary = Writer(fp, codec, quality, name=name or "", block_size=block_size, close_fp=owned)
    return io.TextIOWrapper(binary, encoding, errors, newline) if text else binary


__all__ = ["BLOCK_SIZE", "Reader", "Writer", "compress_bytes", "decompress_bytes", "open", "read_member"]
