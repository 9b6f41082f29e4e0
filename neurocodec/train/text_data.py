"""Training text as parallel byte streams for truncated backpropagation through time."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import torch


def read_text_files(path: str | Path) -> list[bytes]:
    """The bytes of a file, or of each file in a folder (sorted); `.xz` files are unpacked."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [lzma.decompress(p.read_bytes()) if p.suffix == ".xz" else p.read_bytes() for p in files]


class TextStreams:
    """The text read as `batch` streams starting at evenly spaced offsets (each process of a
    distributed run its own share of them); each `batch()` is the next `seq` + 1 bytes of every
    stream, overlapping the last by one byte, so a model can carry its state from step to step.
    `wrapped` is True for the batch where the streams started over (state must be reset)."""

    def __init__(self, data, seq: int, batch: int, device: str = "cpu", rank: int = 0, world: int = 1):
        paths = [data] if isinstance(data, (str, Path)) else list(data)
        text = np.frombuffer(b"".join(b for p in paths for b in read_text_files(p)), dtype=np.uint8)
        streams = batch * world
        self.length = len(text) // streams
        if self.length < seq + 2:
            raise ValueError(f"{len(text)} bytes of text are too few for {streams} streams of {seq} bytes")
        rows = text[: self.length * streams].reshape(streams, self.length)[rank::world]
        self.streams = torch.from_numpy(rows.astype(np.int64))
        self.seq, self.device, self.pos, self.wrapped = seq, device, 0, True

    def batch(self, n: int) -> torch.Tensor:
        self.wrapped = self.pos + self.seq + 1 > self.length or self.pos == 0
        if self.pos + self.seq + 1 > self.length:
            self.pos = 0
        chunk = self.streams[:n, self.pos : self.pos + self.seq + 1].to(self.device)
        self.pos += self.seq
        return chunk
