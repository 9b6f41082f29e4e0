"""Coding steps that compose. Each describes its encoding and its decoding once.

A step has `push(stream, value)` and `pop(stream) -> value` (craystack's shape). The library
writes each pair once, for every kind of stream: on a queue (the range coder) a step pops in
the order it pushed, on a stack (ANS) in reverse, and composite steps order their parts
accordingly. A step is built for one input's shape, so `pop` knows how much to decode.

    Symbols(dist)                       a batch of symbols under one distribution (the leaf)
    Lockstep(program)                   any coding loop, written once as program(io, value):
                                        `io.code(dist, symbols)` writes or reads, and the
                                        decoder runs the same program, never a mirror of it
    Autoregressive(predict, shape, order)   symbols decoded in steps of `order`, each under
                                        the distribution `predict` computes from those before
    BitsBack(prior, likelihood, posterior)  a latent-variable model on a stack: the encoder
                                        borrows the latent from the posterior (craystack's BBANS)
    Tiles(step_for, shape, tile)        an image as tiles, one after another on one stream

Independent streams (parts coded into separate container chunks, decodable in parallel) are
the job of `LikelihoodCodec`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from ..codec import tile_grid
from ..entropy import Distribution
from .streams import Stream, StepError


class Step:
    name = "step"

    def push(self, stream: Stream, value: Any) -> None:
        raise NotImplementedError

    def pop(self, stream: Stream) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"


def as_step(obj: Step | Distribution, name: str = "symbols") -> Step:
    """A step as it is, a distribution as the `Symbols` step it describes."""
    if isinstance(obj, Step):
        return obj
    if isinstance(obj, Distribution):
        return Symbols(obj, name=name)
    raise StepError(f"'{name}' must give a neurocodec Distribution or a Step, got {type(obj).__name__}")


class Symbols(Step):
    """`dist.n` symbols (or `shape`'s worth under a shared distribution), as an array of `shape`."""

    def __init__(self, dist: Distribution, shape: tuple[int, ...] | None = None, name: str = "symbols"):
        self.dist, self.name = dist, name
        n = dist.n if dist.n is not None else (math.prod(shape) if shape is not None else None)
        if n is None:
            raise StepError(f"step '{name}': a shared distribution needs the shape of its symbols")
        if shape is not None and math.prod(shape) != n:
            raise StepError(f"step '{name}': shape {shape} holds {math.prod(shape)} symbols, the distribution {n}")
        self.n, self.shape = n, (n,) if shape is None else tuple(shape)

    def push(self, stream, value):
        value = np.asarray(value)
        if value.size != self.n:
            raise StepError(f"step '{self.name}' codes {self.n} symbols, was given {value.size}")
        with stream.at(self.name):
            stream.push(value.ravel(), self.dist)

    def pop(self, stream):
        with stream.at(self.name):
            return stream.pop(self.dist, self.n).reshape(self.shape)


class _IO:
    """What a lockstep program codes through: `code(dist, symbols)` returns the symbols, which
    the encoder knows and the decoder reads; `decoding` says which side is running."""

    def __init__(self, stream: Stream, decoding: bool, buffer: list | None = None):
        self.stream, self.decoding, self._buffer = stream, decoding, buffer

    def code(self, dist: Distribution | Step, symbols: Any = None, n: int | None = None) -> np.ndarray:
        """`symbols` (the encoder's; the decoder's are placeholders, ignored) under `dist`;
        `n` is their number where `dist` is one distribution shared by all of them."""
        if isinstance(dist, Step):
            if self._buffer is not None:
                raise StepError(f"step '{self.stream.where}': a lockstep program on a stack codes distributions, not steps")
            return dist.pop(self.stream) if self.decoding else (dist.push(self.stream, symbols), symbols)[1]
        if self.decoding:
            return self.stream.pop(dist, n)
        if symbols is None:
            raise StepError(f"step '{self.stream.where}': the encoder must give the symbols it codes")
        symbols = np.asarray(symbols)
        if self._buffer is not None:
            dist.to_index(symbols.ravel())  # fail here, where the step is known, not at the flush
            self._buffer.append((self.stream.where, symbols.ravel(), dist))
        else:
            self.stream.push(symbols, dist)
        return symbols

    def at(self, name: str):
        return self.stream.at(name)


class Lockstep(Step):
    """A coding loop written once: `program(io, value)` codes with `io.code(dist, symbols)` and
    returns the value. The encoder runs it with the value known; the decoder runs the same
    program with `value=None`, and every `io.code` hands it the decoded symbols instead of
    the ones it passed (placeholders there). On a stack the encoder's symbols are buffered and
    pushed in reverse, so the decoder still pops them in program order."""

    def __init__(self, program: Callable[[_IO, Any], Any], name: str = "lockstep"):
        self.program, self.name = program, name

    def push(self, stream, value):
        with stream.at(self.name):
            if not stream.lifo:
                self.program(_IO(stream, False), value)
                return
            buffer: list = []
            self.program(_IO(stream, False, buffer), value)
            for where, symbols, dist in reversed(buffer):
                with stream.at_path(where):
                    stream.push(symbols, dist)

    def pop(self, stream):
        with stream.at(self.name):
            return self.program(_IO(stream, True), None)


class Autoregressive(Lockstep):
    """Symbols of an array of `shape`, decoded in the steps of `order` (each a tuple of index
    arrays, as numpy fancy indexing takes them): `predict(canvas, index)` gives the
    distribution of the symbols at `index` from the canvas, in which every earlier step's
    symbols are in place and later ones are `fill`. The model must not look at later steps:
    `compose.check` catches one that does."""

    def __init__(self, predict: Callable[[np.ndarray, tuple], Distribution], shape: tuple[int, ...],
                 order: Iterable[tuple], fill: int = 0, dtype=np.int64, name: str = "autoregressive"):
        self.predict, self.shape, self.order, self.fill, self.dtype = predict, tuple(shape), list(order), fill, dtype
        super().__init__(self._program, name)

    def _program(self, io: _IO, value):
        canvas = np.full(self.shape, self.fill, dtype=self.dtype)
        if not io.decoding:
            value = np.asarray(value)
            if value.shape != self.shape:
                raise StepError(f"step '{self.name}' codes arrays of shape {self.shape}, got {value.shape}")
        for t, index in enumerate(self.order):
            dist = self.predict(canvas, index)
            with io.at(f"step {t}"):
                symbols = io.code(dist, None if io.decoding else value[index])
                canvas[index] = np.asarray(symbols).reshape(canvas[index].shape)
        return canvas


def raster(shape: tuple[int, ...]) -> list[tuple]:
    """One position at a time, row by row (every channel of a pixel in turn, if 3-D)."""
    return [tuple(np.array([i]) for i in idx) for idx in np.ndindex(*shape)]


def wavefront(height: int, width: int, slope: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Anti-diagonal steps t = col + slope * row: every pixel whose causal neighbourhood
    reaches at most `slope - 1` columns to the right on the rows above is decoded after all of
    it, in far fewer steps than raster order (W + slope * (H - 1))."""
    rows, cols = np.divmod(np.arange(height * width), width)
    step = cols + slope * rows
    order = np.argsort(step, kind="stable")
    starts = np.searchsorted(step[order], np.arange(step.max() + 2))
    return [(rows[order[a:b]], cols[order[a:b]]) for a, b in zip(starts[:-1], starts[1:]) if b > a]


class BitsBack(Step):
    """Bits-back coding of a latent-variable model (BB-ANS): to push x, borrow z from the
    posterior q(z|x), push x under p(x|z), push z under the prior p(z); popping runs it back
    and returns the borrowed bits. The net cost is -log p(x, z) + log q(z|x): the negative
    ELBO. `prior` is a step or distribution; `likelihood(z)` and `posterior(x)` return one.
    The prior may itself be a BitsBack step: that nests into a hierarchy (Bit-Swap)."""

    def __init__(self, prior, likelihood: Callable[[Any], Any], posterior: Callable[[Any], Any], name: str = "bitsback"):
        self.prior, self.likelihood, self.posterior, self.name = prior, likelihood, posterior, name

    def _need_stack(self, stream):
        if not stream.lifo:
            raise StepError(f"step '{self.name}': bits-back coding needs an ANS stack, not a {type(stream).__name__} "
                            "(give LikelihoodCodec coder='ans')")

    def push(self, stream, x):
        self._need_stack(stream)
        with stream.at(self.name):
            z = as_step(self.posterior(x), "posterior").pop(stream)
            as_step(self.likelihood(z), "likelihood").push(stream, x)
            as_step(self.prior, "prior").push(stream, z)

    def pop(self, stream):
        self._need_stack(stream)
        with stream.at(self.name):
            z = as_step(self.prior, "prior").pop(stream)
            x = as_step(self.likelihood(z), "likelihood").pop(stream)
            as_step(self.posterior(x), "posterior").push(stream, z)
            return x


class Tiles(Step):
    """An H x W (x C) array cut into tiles of at most `tile` (rows, columns), each coded by
    `step_for((h, w))` one after another on the same stream."""

    def __init__(self, step_for: Callable[[tuple[int, int]], Step], shape: tuple[int, ...], tile, dtype=np.uint8,
                 name: str = "tiles"):
        th, tw = (tile, tile) if isinstance(tile, int) else tile
        self.step_for, self.shape, self.dtype, self.name = step_for, tuple(shape), dtype, name
        self.grid = tile_grid(shape[0], shape[1], th, tw)

    def push(self, stream, x):
        with stream.at(self.name):
            for i, (r, c, h, w) in enumerate(self.grid):
                with stream.at(f"tile {i}"):
                    self.step_for((h, w)).push(stream, x[r : r + h, c : c + w])

    def pop(self, stream):
        out = np.empty(self.shape, dtype=self.dtype)
        tiles = list(enumerate(self.grid))
        with stream.at(self.name):
            for i, (r, c, h, w) in reversed(tiles) if stream.lifo else tiles:
                with stream.at(f"tile {i}"):
                    out[r : r + h, c : c + w] = self.step_for((h, w)).pop(stream)
        return out


class Each(Step):
    """A list of values, each coded by its own step, one after another on one stream."""

    def __init__(self, steps: list[Step], name: str = "parts"):
        self.steps, self.name = list(steps), name

    def push(self, stream, values):
        if len(values) != len(self.steps):
            raise StepError(f"step '{self.name}' codes {len(self.steps)} values, was given {len(values)}")
        with stream.at(self.name):
            for i, (step, v) in enumerate(zip(self.steps, values)):
                with stream.at(str(i)):
                    step.push(stream, v)

    def pop(self, stream):
        out: list = [None] * len(self.steps)
        order = list(enumerate(self.steps))
        with stream.at(self.name):
            for i, step in reversed(order) if stream.lifo else order:
                with stream.at(str(i)):
                    out[i] = step.pop(stream)
        return out
