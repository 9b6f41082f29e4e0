"""`text`: lossless codec for any byte string, from a byte-level LSTM run in integer arithmetic.

Coding. The input is cut into chunks of `chunk` bytes; each chunk is read as if it followed a
NUL byte, from the network's learned start state (header "start": 1; files without it: from
zeros). Up to `group` consecutive chunks form a group, which is coded in lockstep: at step t
the network predicts byte t of every chunk of the group in one batch, and the range coder
codes those bytes one after another into the group's stream. One group is one container
chunk, so memory is bounded by the group, whatever the input's size. The mixers of large
inputs start from what they learned coding training text (header "warm": 1, `warm_start`;
files without it: from fixed initial weights). A group's chunk starts with one byte: CODED,
or STORED for a group whose coded stream would be longer than its bytes (binary data the
model does not know), so nothing ever expands by more than that byte.

Determinism. The decoder must rebuild exactly the probabilities the encoder used, on any
machine, thread count or device. The network therefore runs in neurocodec's exact runtime
(`neurocodec.exact.lstm`): integer weights, activations and tables, and a vector of integer
weights for the next byte, which constriction normalizes the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np
import torch

from ... import limits, registry
from ...codec import FastestThreads
from ...compose import LikelihoodCodec, Lockstep
from ...exact import ACT_BITS
from ...exact.lstm import WEIGHT_BITS, IntegerLSTM, OnlineOutput
from ...entropy import Categorical
from ...errors import FormatError
from .net import BOS, ByteLSTM
from .bit_mixer import BitMixer
from .context_mix import ContextMixer, learned, start_from

CODED, STORED = b"\x00", b"\x01"  # first byte of a group's container chunk
DEFAULT_CHUNK = 8192  # longest chunk
DEFAULT_STREAMS = 256  # chunks wanted side by side
DEFAULT_GROUP = 256  # most chunks in one group
MIN_CHUNK = 1024
# A group of at least this many chunks steps its network on all of torch's threads where that is
# faster now (`FastestThreads`: an evaluation book decodes about 1.35x faster on two idle cores
# than on one, and 30x slower with the other core busy); a narrower one on one thread, as its
# steps are too small for a second thread to pay (a 6 kB text 10.1 s against 3.1 s with the
# other core busy).
WIDE_GROUP = 64
# Below this many bytes the mixer's weights by byte kind and its match model cost more than they
# give: measured on the evaluation books (network distributions as coded, the mixer alone),
# with orders 3, 5, 7 and hash confirmation they gain 0.3-1.5 % on books of 186-551 kB and
# lose 0.1-0.3 % on inputs of 6-100 kB, where their extra weights have too little to learn from.
LARGE_INPUT = 1 << 17
SMALL_INPUT_OFF = ("classes", "match")
DEFAULT_CONTEXT = {"orders": [3, 5, 7], "rows_log2": 18, "rate": 0.02, "init": 0.3,  # ContextMixer's arguments
                   "confirm": True, "classes": True, "match": 8}
# The output layer learns the document as it is coded (`OnlineOutput`) at 2**-DEFAULT_LEARN per
# nat (header "learn"; 0 or absent: it does not). Simulated in float on the network's states
# of two evaluation books, under the mixer: 2**-11 -1.0 % (Canoeing) and -1.3 % (Wilde's
# poems), 2**-10 -0.75 % and about 2**-12 -1.0 % (Canoeing); the codec at 2**-11: Canoeing
# 1.8246 -> 1.8060 bits per byte, Walden's first 30 kB -0.9 %, its first 6 kB -0.2 %.
DEFAULT_LEARN = 11
# ... in groups of at least this many chunks (header "learn_from"). A step's learning costs
# about as much as the network's own step when a group is one chunk wide (+40 % decode time)
# and little when it is wide; below 16 chunks (inputs under 16 kB) it gained 0.2 % (Walden's
# first 6 kB).
LEARN_FROM_CHUNKS = 16
MAX_LEARN = 30
# After the linear mix, a byte is coded as eight binary decisions under a logistic mix of the
# network, the linear mix, the counts and the match model (`BitMixer`, header "logistic": 1;
# 2: with word contexts too; files without it code the linear mix's distribution directly, as
# before), on inputs of at least LARGE_INPUT bytes: its eight coder calls and compiled loops
# cost 1.2-1.7 ms a step whatever the group's width, so on a narrow group they cost as much
# time as on a wide one for a few bytes' gain (Walden's first 6 kB: 1,461 bytes either way).
DEFAULT_LOGISTIC = True
LOGISTIC = 2  # what the encoder writes
# Chunks start mid-text. From a zero state the network's first bytes of a chunk cost about 44
# bits more than read on from the text before; from its learned start state (weights with
# "start_h", "start_c"), about 9 (float, the first 256 bytes of the chunks of Canoeing and
# Walden). Written as header "start": 1 where the weights have it.

# What a file may ask of a decoder (the encoder writes chunks of MIN_CHUNK to `chunk` = 8,192
# bytes, groups of `group` = 256 chunks: 2 MiB). A group's chunks are decoded side by side, one
# byte of each per step: `chunk` bounds the steps of a group (each costs the network's and the
# mixer's fixed overhead, about 1 ms for one stream), chunk x group the bytes it holds in
# memory at once. A file may ask for twice the shipped chunk and group bytes, four times the
# group; before, a 300-byte file could ask for one stream of 16 MiB (5 hours of decoding).
MAX_CHUNK = 1 << 14
MAX_GROUP = 1 << 10
MAX_GROUP_BYTES = 1 << 22
# The most bytes a group may hold per byte of its container chunk, plus that many once
# (LikelihoodCodec.samples_per_chunk_byte). Measured (fuzz/measure_bounds.py), the most
# compressible input is a run of one byte, and the longer the group the better the mixer
# learns it: 2 MiB of zeros in one shipped group of 256 x 8,192 bytes is 941 bytes (2,229
# bytes a byte; spaces 1,668, "abab..." 1,078, a repeated sentence 157), 4 MiB in one group
# of 256 x 16,384 (MAX_GROUP_BYTES) 1,109 bytes (3,782 a byte). 2**14 leaves a margin of 7
# over the shipped groups and of 4 over the largest a file may ask for. A 300-byte file can
# thus claim 5 MB, not the 300 MB the container's bound allows.
BYTES_PER_CHUNK_BYTE = 1 << 14


def float_net(weights: dict[str, torch.Tensor]) -> ByteLSTM:
    """A float ByteLSTM that computes what the integer weights stand for (to resume training
    from a shipped codec, or to compare against). The input projection was folded into one
    table row per byte, so the embedding becomes the identity of size 256."""
    hidden = weights["w_hh"].shape[1]
    i, f, o, g = torch.arange(4 * hidden).view(4, -1)
    torch_order = torch.cat([i, f, g, o])  # stored i, f, o, g -> torch's i, f, g, o
    net = ByteLSTM(hidden, embed=256)
    scale = 2.0**-WEIGHT_BITS
    with torch.no_grad():
        net.embed.weight.copy_(torch.eye(256))
        net.lstm.weight_ih_l0.copy_(weights["table_in"][:, torch_order].T.double() * scale)
        net.lstm.weight_hh_l0.copy_(weights["w_hh"][torch_order].double() * scale)
        net.lstm.bias_ih_l0.zero_()
        net.lstm.bias_hh_l0.zero_()
        net.out.weight.copy_(weights["w_out"].double() * scale)
        net.out.bias.copy_(weights["b_out"].double() * scale)
        if "start_h" in weights:
            act = 2.0**-ACT_BITS
            net.start[0].copy_(torch.atanh((weights["start_h"].double() * act).clamp(-1 + act, 1 - act)))
            net.start[1].copy_(weights["start_c"].double() * act)
    return net


# --- chunking --------------------------------------------------------------------------


def chunk_length(n: int, chunk: int, streams: int) -> int:
    """The chunk length for an input of `n` bytes: `chunk`, shortened for smaller inputs so that
    about `streams` chunks run side by side, but never below MIN_CHUNK. Longer chunks cost
    fewer bits (each chunk starts from a fresh state), more chunks decode faster."""
    return max(MIN_CHUNK, min(chunk, math.ceil(n / max(streams, 1))))


def plan(n: int, chunk: int, group: int) -> list[list[tuple[int, int]]]:
    """Groups of (start, length) chunks covering `n` bytes."""
    spans = [(s, min(chunk, n - s)) for s in range(0, n, chunk)]
    return [spans[i : i + group] for i in range(0, len(spans), group)]


# --- the codec -------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupCoding:
    """How a group is coded, from its file's header (`TextCodec.check_params`)."""
    context: dict  # ContextMixer's arguments
    learn: int = 0  # the output layer's learning rate, 2**-learn per nat (0: it does not learn)
    logistic: int = 0  # BitMixer after the linear mix: 0 none, 1, 2 with word contexts
    start: bool = False  # chunks start from the network's learned state
    warm: bool = False  # the mixers start from what they learned on training text


@dataclass
class TextConfig:
    hidden: int
    embed: int
    chunk: int = DEFAULT_CHUNK
    streams: int = DEFAULT_STREAMS
    group: int = DEFAULT_GROUP
    context: dict = field(default_factory=lambda: dict(DEFAULT_CONTEXT))
    learn: int = DEFAULT_LEARN
    logistic: bool = DEFAULT_LOGISTIC


@registry.family("text", spec="neurocodec.families.text.spec:TextSpec", config=TextConfig, aliases=('byte_lstm',))
class TextCodec(LikelihoodCodec):
    """Parts are groups of chunks; each group is one `Lockstep` over its chunks side by side."""
    parallel_parts = True  # a part's coding keeps no state on the codec
    part_threads = None  # decided per group in `_lockstep`: see WIDE_GROUP

    exact = False  # the integer LSTM is exact by construction, on any number of threads
    bound_decoding = True  # a run of zeros codes 4 MB in 1.1 kB: garbage stops at its data's bits

    def __init__(self, config: dict, weights: dict[str, torch.Tensor], weights_digest: bytes):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, modality="text")
        self.chunk = int(config.get("chunk", DEFAULT_CHUNK))
        self.group = int(config.get("group", DEFAULT_GROUP))
        self.streams = int(config.get("streams", DEFAULT_STREAMS))
        self.context = config.get("context", DEFAULT_CONTEXT)
        self.learn = int(config.get("learn", DEFAULT_LEARN))
        self.logistic = bool(config.get("logistic", DEFAULT_LOGISTIC))
        self._weights = weights
        self.net = IntegerLSTM(weights, bos=BOS)
        # what the mixers learned on training text (`warm_start`), to start each group from
        warm = {m: {k[len(f"{WARM}{m}."):]: v.numpy() for k, v in weights.items() if k.startswith(f"{WARM}{m}.")}
                for m in ("linear", "bits")}
        self.warm = warm if any(warm.values()) else None

    def to(self, device: str | torch.device) -> "TextCodec":
        """Run the network on `device`; the coded bytes are identical on every device."""
        self.net = IntegerLSTM(self._weights, device, bos=BOS)
        return self

    # --- layout --------------------------------------------------------------------------
    def params(self, data: np.ndarray, quality) -> dict:
        large = len(data) >= LARGE_INPUT
        context = self.context if large else {k: v for k, v in self.context.items() if k not in SMALL_INPUT_OFF}
        params = {"chunk": chunk_length(len(data), self.chunk, self.streams), "group": self.group, "context": context,
                  "learn": self.learn, "learn_from": LEARN_FROM_CHUNKS}
        if self.logistic and large:
            params["logistic"] = LOGISTIC
        if self.net.start is not None:
            params["start"] = 1
        if self.warm and params.get("logistic") == LOGISTIC:
            params["warm"] = 1
        return params

    def check_params(self, params: dict) -> dict:
        chunk = limits.header_int(params, "chunk", 1, MAX_CHUNK, self.name)
        group = limits.header_int(params, "group", 1, MAX_GROUP, self.name)
        if chunk * group > MAX_GROUP_BYTES:
            raise FormatError(f"corrupted .ncd file: text groups of {group} x {chunk} bytes are over {MAX_GROUP_BYTES:,} bytes")
        try:
            context = params["context"]
            ContextMixer.check(**context)  # before anything is allocated
        except ValueError as e:
            raise FormatError(f"corrupted .ncd file: {e}") from None
        except (KeyError, TypeError):
            raise FormatError("corrupted .ncd file: text context parameters are missing or invalid") from None
        learn = limits.header_int(params, "learn", 0, MAX_LEARN, self.name) if "learn" in params else 0
        learn_from = limits.header_int(params, "learn_from", 1, MAX_GROUP, self.name) if "learn_from" in params else 1
        logistic = limits.header_int(params, "logistic", 0, LOGISTIC, self.name) if "logistic" in params else 0
        start = limits.header_int(params, "start", 0, 1, self.name) if "start" in params else 0
        if start and self.net.start is None:
            raise FormatError(f"corrupted .ncd file: it starts its chunks from a learned state that {self.name}'s weights lack")
        warm = limits.header_int(params, "warm", 0, 1, self.name) if "warm" in params else 0
        if warm and not (self.warm and logistic == LOGISTIC and context == self.context):
            raise FormatError(f"corrupted .ncd file: its mixers start from a learned state that {self.name} lacks "
                              "or that does not fit them")
        return {"chunk": chunk, "group": group, "context": dict(context), "learn": learn, "learn_from": learn_from,
                "logistic": logistic, "start": start, "warm": warm}

    samples_per_chunk_byte = BYTES_PER_CHUNK_BYTE

    def plan(self, shape, p):
        return [[(slice(s, s + n),) for s, n in spans] for spans in plan(shape[0], p["chunk"], p["group"])]

    def count_parts(self, shape, p) -> int:
        return -(-(-(-shape[0] // p["chunk"])) // p["group"])

    def part_step(self, shapes, p) -> Lockstep:
        sizes = [s[0] for s in shapes]
        how = GroupCoding(p["context"], p.get("learn", 0) if len(sizes) >= p.get("learn_from", 1) else 0,
                          p.get("logistic", 0), bool(p.get("start", 0)), bool(p.get("warm", 0)))
        return Lockstep(lambda io, chunks: self._lockstep(io, sizes, chunks, how), name="chunks")

    # --- a group's chunk: CODED + range-coded stream, or STORED + its bytes ----------------
    def encode_part(self, values, params, **kw) -> bytes:
        coded = super().encode_part(values, params, **kw)
        raw = b"".join(v.tobytes() for v in values)
        return CODED + coded if len(coded) < len(raw) else STORED + raw

    def decode_part(self, data, shapes, params, **kw):
        sizes = [s[0] for s in shapes]
        if data[:1] == STORED and len(data) == 1 + sum(sizes):
            raw = np.frombuffer(data, dtype=np.uint8, offset=1)
            return np.split(raw, np.cumsum(sizes)[:-1])
        if data[:1] == CODED:
            return super().decode_part(data[1:], shapes, params, **kw)
        raise FormatError("corrupted file: a text group has an unknown mode or length")

    @torch.no_grad()
    def _lockstep(self, io, sizes: list[int], chunks: list[np.ndarray] | None, how: GroupCoding,
                  keep: list | None = None) -> list[np.ndarray]:
        with FastestThreads(None if len(sizes) >= WIDE_GROUP else 1) as threads:
            return self._steps(io, sizes, chunks, how, threads, keep)

    def _steps(self, io, sizes: list[int], chunks: list[np.ndarray] | None, how: GroupCoding, threads: FastestThreads,
               keep: list | None) -> list[np.ndarray]:
        """Step every chunk of a group together: byte t of every chunk still running, under
        the network's prediction mixed with the group's own statistics (with `logistic`, bit
        by bit by `BitMixer` after the linear mix); with `learn`, the network's output layer
        learns from each step's bytes. `keep`: a list that receives the mixers at the end."""
        learn = how.learn
        lengths = np.array(sizes)
        data = np.zeros((len(sizes), int(lengths.max())), dtype=np.uint8)
        if chunks is not None:
            for i, chunk in enumerate(chunks):
                data[i, : len(chunk)] = chunk
        prev, h, c = self.net.initial_state(len(sizes), learned=how.start)
        net = OnlineOutput(self.net, learn) if learn else self.net
        mixer = ContextMixer(len(sizes), **how.context, length=data.shape[1])
        bits = BitMixer(len(mixer.orders), len(sizes), words=how.logistic >= 2) if how.logistic else None
        if how.warm:
            start_from(mixer, self.warm["linear"])
            start_from(bits, self.warm["bits"])
        for t in range(data.shape[1]):
            with threads.step():
                active = int((lengths > t).sum())  # only the last chunk of an input may be short
                weights, h, c = net.step(prev[:active], h[:active], c[:active])
                w = weights.cpu().numpy()
                p = w / w.sum(axis=1, keepdims=True)
                probs = mixer.mix(p)  # network, then document statistics
                if bits:
                    symbols = bits.code(io, p, probs, mixer, data[:active, t])
                else:
                    symbols = io.code(Categorical(probs), data[:active, t])
                data[:active, t] = symbols
                mixer.update(symbols)
                prev = torch.from_numpy(np.asarray(symbols, dtype=np.int64)).to(self.net.device)
                if learn:
                    net.learn(h, weights, prev)
        if keep is not None:
            keep += [mixer, bits]
        return [data[i, :n] for i, n in enumerate(sizes)]


WARM = "warm."  # weight names of what the mixers learned on training text
WARM_BYTES = 1 << 20  # of training text, for `warm_start`


class _Given:
    """An io for `_steps` that codes nothing: each symbol is the one given."""

    def code(self, dist, symbols):
        return symbols


def warm_start(config: dict, weights: dict[str, torch.Tensor], text: bytes) -> dict[str, torch.Tensor]:
    """What the mixers of large inputs (the shipped context options, the logistic mixer) learn
    over `text` coded as one group by the network `weights`: the weight tensors from which the
    mixers of every such file start (header "warm": 1), instead of from their fixed initial
    values. A mixer starting from another book's end state coded Canoeing 0.46 % smaller,
    Wilde's poems 0.26 %, Walden 0.13 % (the shipped weights)."""
    codec = TextCodec(dict(config, name="warm-start"), {k: v for k, v in weights.items() if not k.startswith(WARM)}, b"")
    data = np.frombuffer(text, dtype=np.uint8)
    spans = plan(len(data), chunk_length(len(data), codec.chunk, codec.streams), codec.group)[0]
    how = GroupCoding(codec.context, codec.learn, LOGISTIC, codec.net.start is not None)
    kept: list = []
    codec._lockstep(_Given(), [n for _, n in spans], [data[s : s + n] for s, n in spans], how, kept)
    mixer, bits = kept
    return {f"{WARM}{name}.{k}": torch.from_numpy(v) for name, m in (("linear", mixer), ("bits", bits))
            for k, v in learned(m).items()}


def default_config(name: str, net: ByteLSTM) -> dict:
    return {
        "name": name,
        "family": "text",
        "modality": "text",
        "lossless": True,
        "hidden": net.hidden,
        "embed": net.embed_dim,
        "chunk": DEFAULT_CHUNK,
        "streams": DEFAULT_STREAMS,
        "group": DEFAULT_GROUP,
        "context": DEFAULT_CONTEXT,
        "learn": DEFAULT_LEARN,
        "logistic": DEFAULT_LOGISTIC,
    }
