"""Fuzzing the .ncd container and every shipped decoder with damaged and crafted real files.

Inputs start from real files (tests/data/compat/*.ncd: every shipped codec, small images and
texts) and are changed the way a faulty tool or an attacker changes them: header fields
(params, shape, codec, modality, name, weights digest) and chunk bytes, after which every
checksum is recomputed (`neurocodec.container.pack`, or the same framing for headers the
container's writer refuses), so that only neurocodec's own checks stand between the input and
the decoders. The rule: `neurocodec.decompress` returns, or raises a `NeurocodecError`; no
other exception, no case over TIME_LIMIT seconds, none over MEMORY_LIMIT bytes of address
space beyond the loaded codecs (RLIMIT_AS). Four engines:

    # coverage-guided (libFuzzer through atheris; pip install atheris): a structured,
    # checksum-repairing mutator, libFuzzer's byte mutations now and then
    nice python fuzz/fuzz_decoders.py atheris -max_total_time=1800
    # Hypothesis: structured headers (JSON values of every kind in every field) and chunk edits
    nice python fuzz/fuzz_decoders.py hypothesis --examples 20000
    # the structured mutator alone, chained from the corpus: no coverage feedback, no
    # instrumentation, about 65 inputs/s on one core (atheris: about 8); one seed a process
    nice python fuzz/fuzz_decoders.py random --examples 1000000 --minutes 240 --seed 1
    # rerun saved inputs (a libFuzzer corpus, crashes) and report their outcomes
    python fuzz/fuzz_decoders.py replay fuzz/work/corpus
    # the figures of every run so far (bench/results/fuzz/stats-*.json), added up, and
    # written to bench/results/fuzz/summary.md
    python fuzz/fuzz_decoders.py tally

Each run prints, per decoder the input was addressed to, the inputs tried, their outcomes, the
slowest case and the largest memory growth, and every crash class (an exception other than a
NeurocodecError, a case over the time or memory limit, or a lossy file that decoded to other
pixels than the original without an error); the first input of each class is saved under
fuzz/work/crashes/. tests/test_hostile.py runs a short Hypothesis run in CI.
"""

from __future__ import annotations

import argparse
import collections
import copy
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import resource
import signal
import struct
import sys
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "compat"
WORK = Path(__file__).resolve().parent / "work"  # the atheris corpus, crash inputs (not committed)
RESULTS = ROOT / "bench" / "results" / "fuzz"  # every run's figures (committed)
TIME_LIMIT = 10.0  # seconds a case may take
MEMORY_LIMIT = 2 << 30  # bytes of address space a case may add to the loaded codecs
LEGACY = "silent wrong lossy decode of a file without a symbols digest"

INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 100, 127, 128, 129, 255, 256, 511, 512, 513,
               1000, 1023, 1024, 1025, 2047, 2048, 4095, 4096, 8191, 8192, 16383, 16384, 16385, 65535, 65536,
               1 << 20, (1 << 20) + 1, 1 << 24, 1 << 28, (1 << 31) - 1, 1 << 31, 1 << 32, 1 << 40, 1 << 47, 1 << 48,
               (1 << 48) + 1, 1 << 53, 1 << 63, 1 << 64, -1, -2, -(1 << 31), -(1 << 63), 10**30]


# --- files as parts, and parts as files with valid checksums ----------------------------------


@dataclasses.dataclass
class Parts:
    """A .ncd file taken apart, every field free to change: `pack` gives valid checksums."""

    doc: dict  # the header's JSON object
    chunks: list[bytes]
    has_digest: int
    digest: bytes
    version: int = 2
    count: int | None = None  # the trailer's chunk count (None: the true count)
    trailing: bytes = b""
    header_text: bytes | None = None  # raw header bytes instead of `doc`


def split(blob: bytes) -> Parts | None:
    """The parts of a file whose framing is intact (checksums are not checked), else None."""
    from neurocodec import container

    try:
        fp = io.BytesIO(blob)
        if fp.read(8) != container.MAGIC:
            return None
        version, length = struct.unpack("<HI", fp.read(6))
        stored = fp.read(length)
        doc = json.loads((container._inflate(stored) if version == 2 else stored).decode("utf-8"))
        fp.read(4)
        chunks = []
        while (n := struct.unpack("<I", fp.read(4))[0]) != container.END_MARKER:
            chunks.append(fp.read(n))
            fp.read(4)
        count, has_digest, digest = struct.unpack("<QB16s", fp.read(25))
        return Parts(doc, chunks, has_digest, digest, version) if isinstance(doc, dict) else None
    except (ValueError, struct.error, RecursionError, container.FormatError):
        return None


def pack(p: Parts) -> bytes:
    """The file of `p` with every checksum valid: the container's own writer when its Header
    takes the fields, else the same framing written here (for headers readers must refuse)."""
    from neurocodec import container

    if p.header_text is None and p.version == container.FORMAT_VERSION and p.count is None and not p.trailing:
        try:
            d = p.doc
            header = container.Header(codec=d["codec"], weights_digest=bytes.fromhex(d["weights_digest"]),
                                      modality=d["modality"], lossless=d["lossless"], shape=tuple(d["shape"]),
                                      params=d["params"], name=d["name"])
            if set(d) == container._HEADER_FIELDS and (p.has_digest == 1) == header.lossless:
                return container.pack(header, p.chunks, p.digest if header.lossless else None)
        except (KeyError, TypeError, ValueError, OverflowError, RecursionError, AttributeError):
            pass
    text = p.header_text
    if text is None:
        try:
            text = json.dumps(p.doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError, RecursionError):
            text = b"{}"
    stored = container._deflate(text) if p.version == 2 else text  # version 2 headers are deflated
    fields = struct.pack("<HI", p.version & 0xFFFF, len(stored)) + stored
    out = [container.MAGIC, fields, struct.pack("<I", zlib.crc32(fields))]
    for c in p.chunks:
        out += [struct.pack("<I", len(c)), c, struct.pack("<I", zlib.crc32(c))]
    trailer = struct.pack("<QB16s", (len(p.chunks) if p.count is None else p.count) % (1 << 64), p.has_digest & 0xFF,
                          p.digest[:16].ljust(16, b"\0"))
    out += [struct.pack("<I", container.END_MARKER), trailer, struct.pack("<I", zlib.crc32(trailer)), p.trailing]
    return b"".join(out)


# --- the corpus -----------------------------------------------------------------------------


@dataclasses.dataclass
class Seed:
    path: Path
    blob: bytes
    parts: Parts
    codec: str
    output: object = None  # what the file decodes to
    short: bool = False  # written at start-up (_short_seeds), not a compat fixture


_SEEDS: list[Seed] | None = None
_CODECS: dict = {}  # codec name -> (weights digest hex, modality, lossless)


def seeds(corpus: Path = CORPUS, max_bytes: int | None = None) -> list[Seed]:
    """The real files the inputs start from (decoded once: their outputs, and every codec
    loaded); the first call decides the corpus (`max_bytes`: only files up to that size)."""
    global _SEEDS
    if _SEEDS is None:
        import neurocodec

        out = []
        for path in sorted(corpus.glob("*.ncd")):
            if max_bytes is not None and path.stat().st_size > max_bytes:
                continue
            blob = path.read_bytes()
            parts = split(blob)
            if parts is None:
                continue
            try:
                output = neurocodec.decompress(blob)
            except neurocodec.NeurocodecError:  # e.g. retired weights that are no longer shipped
                continue
            out.append(Seed(path, blob, parts, parts.doc["codec"], output))
        for name in neurocodec.available_codecs():
            c = neurocodec.load_codec(name)
            _CODECS[name] = (c.weights_digest.hex(), c.modality, c.lossless)
            out += _short_seeds(c)
        _SEEDS = out
    return _SEEDS


SHORT_TEXT, SHORT_SIDE = 64, 12  # bytes of text, pixels of a side


def _short_seeds(codec) -> list[Seed]:
    """The compat fixtures' cases cut to SHORT_TEXT bytes or SHORT_SIDE x SHORT_SIDE pixels,
    written now with the shipped weights. Real decodes dominate a run's time (one text stream
    decodes at about 1 kB/s: the long files' 20 kB/s come from many streams side by side; a
    pixelcnn 37 x 53 crop takes 0.2 s), and a short file exercises the same header checks,
    layout and decoding paths, text's mixer of long inputs included."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import make_compat
    finally:
        sys.path.pop(0)
    out = []
    for case, spec in make_compat.inputs(codec).items():
        if "bytes" in spec:
            spec = dict(spec, bytes=min(spec["bytes"], SHORT_TEXT))
        else:
            (r0, r1), (c0, c1) = spec["rows"], spec["cols"]
            spec = dict(spec, rows=[r0, min(r1, r0 + SHORT_SIDE)], cols=[c0, min(c1, c0 + SHORT_SIDE)])
        blob = make_compat.encode(codec, make_compat.load_input(spec), spec, None if codec.lossless else 50)
        out.append(Seed(Path(f"{codec.name}-{case}-short.ncd"), blob, split(blob), codec.name, codec.decode(blob),
                        short=True))
    return out


def by_decoder(pool: list[Seed]) -> list[tuple[list[Seed], list[Seed]]]:
    """Per decoder (sorted by name): (all its seeds, its short ones), for `pick`."""
    groups = collections.defaultdict(list)
    for s in pool:
        groups[s.codec].append(s)
    return [(g, [s for s in g if s.short]) for _, g in sorted(groups.items())]


def pick(groups: list[tuple[list[Seed], list[Seed]]], rng: random.Random) -> Seed:
    """A seed for the next input: a decoder drawn uniformly, so each gets its share whatever
    its number of fixtures; then a short file 19 times in 20 (see _short_seeds)."""
    seeds_of, short = rng.choice(groups)
    return rng.choice(short if short and rng.random() < 0.95 else seeds_of)


# --- the mutator ------------------------------------------------------------------------------


def _value_like(v, rng: random.Random):
    """A JSON value standing where `v` stood: near it, interesting, of another type, or odd."""
    r = rng.random()
    if isinstance(v, bool):
        return rng.choice([not v, 0, 1, "true", None])
    if isinstance(v, int) and r < 0.55:
        return rng.choice([v + rng.choice([-1, 1, -64, 64]), v * 2, v // 2, v * 1000, -v, rng.choice(INTERESTING),
                           rng.choice(INTERESTING), 0, 1])
    if isinstance(v, float) and r < 0.5:
        return rng.choice([v * 2, -v, 0.0, 1.0, 0.999, 1e-300, 1e300, v + 1e-9])
    if isinstance(v, list) and v and r < 0.5:
        w = list(v)
        i = rng.randrange(len(w))
        op = rng.randrange(4)
        if op == 0:
            w[i] = _value_like(w[i], rng)
        elif op == 1:
            del w[i]
        elif op == 2:
            w.insert(i, _value_like(w[i], rng))
        else:
            w = w * rng.choice([2, 3])
        return w
    if isinstance(v, dict) and v and r < 0.7:
        return _mutate_dict(v, rng)
    if isinstance(v, str) and r < 0.4:
        return rng.choice([v[:-1], v + v, v.upper(), "", "\x00", v[::-1], "0" * 64, "é" * 3])
    return rng.choice([None, True, False, 0, -1, 1 << 64, 2.5, float("1e308"), "7", str(v)[:30], [], {}, [v], {"a": v},
                       rng.choice(INTERESTING), str(rng.choice(INTERESTING))])


def _mutate_dict(d: dict, rng: random.Random) -> dict:
    d = dict(d)
    r = rng.random()
    if d and r < 0.75:
        k = rng.choice(sorted(d))
        d[k] = _value_like(d[k], rng)
    elif d and r < 0.87:
        del d[rng.choice(sorted(d))]
    else:
        d[rng.choice(["tile", "chunk", "group", "quality", "x", "symbols", "context", ""])] = _value_like(rng.choice(INTERESTING), rng)
    return d


def _mutate_bytes(c: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    b = bytearray(c)
    op = rng.randrange(12)
    n = len(b)
    if op == 0 and n:  # flip a bit
        i = rng.randrange(n)
        b[i] ^= 1 << rng.randrange(8)
    elif op == 1 and n:  # set a byte
        b[rng.randrange(n)] = rng.choice([0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)])
    elif op == 2:  # insert bytes (a word, to keep word-aligned streams readable)
        i = rng.randrange(n + 1)
        b[i:i] = rng.choice([bytes(4), b"\xff" * 4, rng.randbytes(4), rng.randbytes(rng.randrange(1, 9))])
    elif op == 3 and n:  # delete a range (often a word)
        i = rng.randrange(n)
        b[i : i + rng.choice([1, 4, 4, 8, rng.randrange(1, n + 1)])] = b""
    elif op == 4:  # truncate
        b = b[: rng.randrange(n + 1)]
    elif op == 5:  # append zeros or noise
        b += rng.choice([bytes(rng.choice([4, 8, 64])), rng.randbytes(rng.choice([4, 16]))])
    elif op == 6 and n:  # zero or fill a range
        i = rng.randrange(n)
        j = min(n, i + rng.randrange(1, 64))
        b[i:j] = bytes([rng.choice([0, 0xFF])]) * (j - i)
    elif op == 7:  # all zeros, same length or a few words
        b = bytearray(rng.choice([n, 4, 8, 12, 16, 64, 256]))
    elif op == 8 and others:  # splice from another real chunk
        o = rng.choice(others)
        i, j = rng.randrange(n + 1), rng.randrange(len(o) + 1)
        b = b[:i] + o[j:]
    elif op == 9 and n >= 8:  # swap two words
        i, j = rng.randrange(n // 4) * 4, rng.randrange(n // 4) * 4
        b[i : i + 4], b[j : j + 4] = b[j : j + 4], b[i : i + 4]
    elif op == 10 and n:  # change a little-endian u32 (a stack's seed count, a length)
        i = rng.randrange(max(1, n - 3))
        b[i : i + 4] = struct.pack("<I", rng.choice(INTERESTING) % (1 << 32))[: len(b[i : i + 4])]
    else:
        b = bytearray(rng.randbytes(rng.randrange(0, 32)))
    return bytes(b)


def mutate(blob: bytes, rng: random.Random, pool: list[Seed] | None = None) -> bytes:
    """`blob` with 1-4 structured changes and every checksum valid (libFuzzer-style bytes
    are returned unchanged-in-spirit: an unparseable input gets plain byte mutations)."""
    pool = seeds() if pool is None else pool
    p = split(blob)
    if p is None:
        p = copy.deepcopy(rng.choice(pool).parts)
    p = copy.deepcopy(p)
    others = [c for s in pool for c in s.parts.chunks]
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        what = rng.random()
        d = p.doc
        if what < 0.30:  # a header parameter
            d["params"] = _mutate_dict(d.get("params") if isinstance(d.get("params"), dict) else {}, rng)
        elif what < 0.42:  # the shape
            shape = list(d.get("shape")) if isinstance(d.get("shape"), list) else [1]
            r = rng.random()
            if shape and r < 0.6:
                i = rng.randrange(len(shape))
                if rng.random() < 0.3 or type(shape[i]) is not int:
                    shape[i] = _value_like(shape[i], rng)
                else:
                    shape[i] = rng.choice([rng.choice(INTERESTING), shape[i] + rng.choice([-1, 1]), shape[i] * rng.choice([2, 16, 256])])
            elif r < 0.8:
                shape = rng.choice([shape[:-1], shape + [3], shape[::-1], [rng.choice(INTERESTING)], []])
            else:
                shape = _value_like(shape, rng)
            d["shape"] = shape
        elif what < 0.48:  # another decoder, with its weights digest, modality and kind
            name = rng.choice(sorted(_CODECS) + ["nosuchcodec"])
            d["codec"] = name
            if name in _CODECS and rng.random() < 0.85:
                digest, modality, lossless = _CODECS[name]
                d["weights_digest"], d["modality"], d["lossless"] = digest, modality, lossless
                p.has_digest = int(lossless)
        elif what < 0.52:  # another header field
            k = rng.choice(["weights_digest", "modality", "lossless", "name", "codec", "extra"])
            d[k] = _value_like(d.get(k), rng)
            if k == "lossless" and isinstance(d[k], bool):
                p.has_digest = int(d[k])
        elif what < 0.88 and p.chunks:  # a chunk's bytes
            i = rng.randrange(len(p.chunks))
            p.chunks[i] = _mutate_bytes(p.chunks[i], rng, others)
        elif what < 0.94:  # the list of chunks
            op = rng.randrange(5)
            if op == 0 and p.chunks:
                del p.chunks[rng.randrange(len(p.chunks))]
            elif op == 1 and p.chunks:
                p.chunks.insert(rng.randrange(len(p.chunks) + 1), rng.choice(p.chunks))
            elif op == 2 and len(p.chunks) > 1:
                i, j = rng.randrange(len(p.chunks)), rng.randrange(len(p.chunks))
                p.chunks[i], p.chunks[j] = p.chunks[j], p.chunks[i]
            elif op == 3:
                p.chunks.append(rng.choice([b"", bytes(8), rng.choice(others)]))
            else:
                p.chunks = [b""] * rng.choice([0, 1, 2, 16])
        elif what < 0.97:  # the trailer, the version, trailing bytes
            op = rng.randrange(4)
            if op == 0:
                p.count = rng.choice([0, len(p.chunks) + 1, 1 << 63])
            elif op == 1:
                p.has_digest = rng.choice([0, 1, 2])
            elif op == 2:
                p.version = rng.choice([0, 1, 2, 3, 0xFFFF])
            else:
                p.trailing = rng.choice([b"\0", b"x" * 4])
        else:  # the digest
            p.digest = rng.randbytes(16)
    return pack(p)


# --- running one input ------------------------------------------------------------------------


class CaseTimeout(BaseException):
    """A case ran over TIME_LIMIT (a BaseException: no `except Exception` inside swallows it)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Stats:
    """Outcomes per decoder, and crash classes with their first input."""

    def __init__(self, crash_dir: Path | None = WORK / "crashes"):
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.slowest: dict[str, float] = collections.defaultdict(float)
        self.memory: dict[str, int] = collections.defaultdict(int)
        self.crashes: dict[str, list] = {}  # class -> [count, saved path, message]
        self.messages: collections.Counter = collections.Counter()  # refusals, numbers and names elided
        self.crash_dir = crash_dir
        self.started = time.time()
        self.base_rss = 0
        self.base_vm = 0
        self.seconds = 0  # of the runs merged in (tally)
        self.coverage: dict[str, list[int]] = {}  # module -> [lines run, statements] (--coverage)

    def crash(self, key: str, blob: bytes, message: str) -> None:
        if key in self.crashes:
            self.crashes[key][0] += 1
            return
        path = None
        if self.crash_dir is not None:
            self.crash_dir.mkdir(parents=True, exist_ok=True)
            path = self.crash_dir / (hashlib.sha1(key.encode()).hexdigest()[:12] + ".ncd")
            path.write_bytes(blob)
            path = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        self.crashes[key] = [1, str(path), message[:300]]
        print(f"\nNEW CRASH CLASS: {key}\n  {message[:300]}\n  saved: {path}", file=sys.stderr, flush=True)

    def merge(self, doc: dict) -> None:
        """Add a saved run's figures (`_save`'s JSON) to these."""
        for codec, outcomes in doc.get("per_decoder", {}).items():
            self.counts[codec].update(outcomes)
        for codec, seconds in doc.get("slowest_s", {}).items():
            self.slowest[codec] = max(self.slowest[codec], seconds)
        for codec, mb in doc.get("rss_growth_mb", {}).items():
            self.memory[codec] = max(self.memory[codec], mb << 20)
        for key, (count, path, message) in doc.get("crashes", {}).items():
            if key in self.crashes:
                self.crashes[key][0] += count
            else:
                self.crashes[key] = [count, path, message]
        self.seconds += doc.get("seconds", 0)
        for module, (run, total) in doc.get("coverage", {}).items():  # the best run's (lines are not kept)
            if run > self.coverage.get(module, [0, total])[0]:
                self.coverage[module] = [run, total]

    def failures(self) -> dict[str, list]:
        """The crash classes, less the known limit of old lossy files (see _silent_wrong)."""
        return {k: v for k, v in self.crashes.items() if not k.startswith(LEGACY)}

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def report(self) -> str:
        seconds = self.seconds or time.time() - self.started
        lines = [f"{self.total():,} inputs in {seconds:,.0f} s; per decoder the header names:",
                 f"  {'decoder':14s} {'inputs':>9s} {'decoded':>8s}  slowest  +RSS MB  outcomes"]
        for codec in sorted(self.counts):
            c = self.counts[codec]
            n = sum(c.values())
            outcomes = ", ".join(f"{k} {v:,}" for k, v in c.most_common() if k not in ("inputs",))
            lines.append(f"  {codec:14s} {n:9,d} {c['decoded']:8,d}  {self.slowest[codec]:6.2f}s  {self.memory[codec] / 2**20:7.0f}  {outcomes}")
        if self.messages:  # (not kept in the saved figures)
            lines.append("most frequent refusals:")
            lines += [f"  {n:9,d}  {m}" for m, n in self.messages.most_common(25)]
        if self.coverage:
            run, total = (sum(v[i] for v in self.coverage.values()) for i in (0, 1))
            lines.append(f"line coverage of the decoding modules: {run:,} of {total:,} statements ({100 * run / total:.0f} %)")
            lines += [f"  {100 * r / max(t, 1):5.1f} %  {r:5d} / {t:5d}  {m}" for m, (r, t) in sorted(self.coverage.items())]
        lines.append(f"crash classes: {len(self.crashes)}")
        for key, (count, path, message) in sorted(self.crashes.items()):
            lines.append(f"  {count:6,d} x {key}\n           {message[:200]}\n           first input: {path}")
        return "\n".join(lines)


def _decoder_of(blob: bytes) -> str:
    p = split(blob)
    if p is None:
        return "(unparsed)"
    name = p.doc.get("codec")
    return name if isinstance(name, str) and name in _CODECS else "(other name)"


def _where(exc: BaseException) -> str:
    """The innermost frame of neurocodec (else the innermost) where `exc` was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/neurocodec/" in f.filename.replace(os.sep, "/")] or frames
    if not ours:
        return "?"
    f = ours[-1]
    return f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} {f.name}"


def run_one(blob: bytes, stats: Stats | None = None, strict: bool = False):
    """Decode `blob` under the time limit and count the outcome; a crash is recorded (or, if
    `strict`, raised: what a test wants)."""
    import neurocodec

    decoder = _decoder_of(blob)
    if stats is not None and stats.base_rss:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the peak RSS (VmHWM)
        except OSError:
            pass
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    start = time.perf_counter()
    out, key, message = None, None, ""
    try:
        out = neurocodec.decompress(blob)
        outcome = "decoded"
    except neurocodec.NeurocodecError as e:
        outcome = type(e).__name__
        if stats is not None:
            stats.messages[re.sub(r"'[^']*'|[\d,.]+|\(.*", "#", str(e))[:70]] += 1
    except CaseTimeout:
        outcome, key, message = "slow", f"over {TIME_LIMIT:.0f} s ({decoder})", "timed out"
    except MemoryError as e:
        outcome, key, message = "memory", f"MemoryError at {_where(e)}", f"over the {MEMORY_LIMIT >> 30} GiB limit: {e}"
    except Exception as e:  # noqa: BLE001 - the point: every other exception is a crash
        if strict:
            raise
        outcome, key, message = "crash", f"{type(e).__name__} at {_where(e)}", f"{type(e).__name__}: {e}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    elapsed = time.perf_counter() - start
    legacy = False
    if key is None and outcome == "decoded":
        key, message, legacy = _silent_wrong(blob, out)
        if key:
            outcome = "wrong (legacy file)" if legacy else "wrong"
    if strict and key is not None and not legacy:
        raise AssertionError(f"{key}: {message}")
    if stats is not None:
        stats.counts[decoder][outcome] += 1
        stats.slowest[decoder] = max(stats.slowest[decoder], elapsed)
        if stats.base_rss:
            stats.memory[decoder] = max(stats.memory[decoder], _vm("VmHWM") - stats.base_rss)
        if key is not None:
            stats.crash(key, blob, message)
        elif elapsed > TIME_LIMIT:  # a C call the alarm could not interrupt
            stats.crash(f"over {TIME_LIMIT:.0f} s ({decoder}, uninterruptible)", blob, f"{elapsed:.1f} s")
    return outcome


def _silent_wrong(blob: bytes, out) -> tuple[str | None, str, bool]:
    """A lossy file that decoded, without an error, to other pixels than the real file it was
    made from, with its chunks changed: what the symbols digest exists to prevent. Files
    without one (written before it existed, or with it removed) still decode, unchecked: that
    is reported as a class of its own, a known limit of the old format, not a failure."""
    p = split(blob)
    if p is None or p.doc.get("lossless") is not False:
        return None, "", False
    legacy = not (isinstance(p.doc.get("params"), dict) and "symbols" in p.doc["params"])
    for s in seeds():
        same = all(s.parts.doc.get(k) == p.doc.get(k) for k in ("codec", "shape", "weights_digest"))
        if same:  # the file it was made from: the same weights too (retired weights decode other pixels)
            if p.chunks != s.parts.chunks and isinstance(out, np.ndarray) and isinstance(s.output, np.ndarray) \
                    and out.shape == s.output.shape and np.abs(out.astype(int) - s.output).max() > 1 \
                    and p.doc.get("params", {}).get("quality") == s.parts.doc.get("params", {}).get("quality"):
                if legacy:
                    return LEGACY + " (old format: known)", "changed chunks decoded without an error to other pixels", True
                return "silent wrong lossy decode", "changed chunks decoded without an error to other pixels", False
    return None, "", False


def prepare(memory_limit: int | None = MEMORY_LIMIT, max_bytes: int | None = None) -> Stats:
    """Load every codec and the corpus, then cap the address space `memory_limit` above it."""
    import warnings

    warnings.filterwarnings("ignore")
    pool = seeds(max_bytes=max_bytes)
    for s in pool:  # warm every decoder on its real files
        run_one(s.blob)
    stats = Stats()
    stats.base_rss = _vm("VmRSS")
    stats.base_vm = _vm("VmSize")
    if memory_limit is not None:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = stats.base_vm + memory_limit
        if hard == resource.RLIM_INFINITY or limit <= hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return stats


# --- engines ----------------------------------------------------------------------------------


def hypothesis_strategy():
    """Inputs from the corpus with Hypothesis-drawn header fields (JSON values of every type,
    interesting integers) and chunk edits: for structured headers."""
    from hypothesis import strategies as st

    pool = seeds()
    scalars = st.one_of(st.none(), st.booleans(), st.sampled_from(INTERESTING), st.integers(),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                          max_leaves=6)
    dims = st.one_of(st.sampled_from(INTERESTING), st.integers(0, 5000), values)

    @st.composite
    def inputs(draw):
        seed = draw(st.sampled_from(pool))
        p = copy.deepcopy(seed.parts)
        d = p.doc
        params = d["params"]
        for key in sorted(params):
            if draw(st.booleans()):
                old = params[key]
                if isinstance(old, dict):
                    params[key] = {k: (draw(st.one_of(values, st.just(v))) if draw(st.booleans()) else v) for k, v in old.items()}
                else:
                    params[key] = draw(st.one_of(values, st.just(str(old)), st.sampled_from(INTERESTING)))
        if draw(st.booleans()):
            d["shape"] = draw(st.one_of(st.lists(dims, max_size=4), st.just(list(d["shape"])[::-1]), values))
        if draw(st.integers(0, 9)) == 0:
            name = draw(st.sampled_from(sorted(_CODECS)))
            digest, modality, lossless = _CODECS[name]
            d.update(codec=name, weights_digest=digest, modality=modality, lossless=lossless)
            p.has_digest = int(lossless)
        if draw(st.integers(0, 9)) == 0:
            key = draw(st.sampled_from(["codec", "weights_digest", "modality", "lossless", "name"]))
            d[key] = draw(values)
        rng = draw(st.randoms(use_true_random=False))
        for _ in range(draw(st.integers(0, 2))):
            if p.chunks:
                i = rng.randrange(len(p.chunks))
                p.chunks[i] = _mutate_bytes(p.chunks[i], rng, [c for s in pool for c in s.parts.chunks])
        return pack(p)

    return inputs()


def run_hypothesis(examples: int, stats: Stats, strict: bool = False, seed: int | None = None,
                   budget_s: float | None = None) -> None:
    """`examples` Hypothesis inputs (fewer if `budget_s` seconds run out first); `strict`
    raises at the first crash, with the input Hypothesis shrank it to."""
    from hypothesis import HealthCheck, given, settings

    end = None if budget_s is None else time.monotonic() + budget_s

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None and strict,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(hypothesis_strategy())
    def check(blob):
        if end is None or time.monotonic() < end:
            run_one(blob, stats, strict=strict)

    if seed is not None:
        import hypothesis
        check = hypothesis.seed(seed)(check)
    check()


def run_random(n: int, stats: Stats, seed: int = 0, report_every: float = 60.0, strict: bool = False,
               budget_s: float | None = None, save: bool = False) -> None:
    """The structured mutator alone, chained from the corpus (no coverage feedback)."""
    rng = random.Random(seed)
    pool = seeds()
    groups = by_decoder(pool)
    last = time.time()
    end = None if budget_s is None else time.monotonic() + budget_s
    for _ in range(n):
        if end is not None and time.monotonic() > end:
            break
        blob = pick(groups, rng).blob
        for _ in range(rng.choice([1, 1, 2, 3])):
            blob = mutate(blob, rng, pool)
        run_one(blob, stats, strict=strict)
        if time.time() - last > report_every:  # a killed run keeps its figures up to here
            print(stats.report(), flush=True)
            if save:
                _save(stats)
            last = time.time()


def run_atheris(argv: list[str], stats: Stats) -> None:
    import atheris

    pool = seeds()
    corpus = WORK / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for s in pool:
        (corpus / s.path.name).write_bytes(s.blob)
    last = [time.time()]

    def test_one(data: bytes) -> None:
        run_one(data, stats)
        if time.time() - last[0] > 60:  # libFuzzer ends the process with _exit: save as we go
            print(stats.report(), flush=True)
            _save(stats)
            last[0] = time.time()

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.1:
            return atheris.Mutate(data, max_size)
        out = mutate(data, rng, pool)
        return out if len(out) <= max_size else atheris.Mutate(data, max_size)

    args = [argv[0], str(corpus), "-max_len=65536", f"-timeout={int(TIME_LIMIT * 6)}", "-rss_limit_mb=0",
            "-print_final_stats=1"] + argv[1:]
    atheris.Setup(args, test_one, custom_mutator=custom_mutator)
    try:
        atheris.Fuzz()
    finally:
        print(stats.report(), flush=True)


def main() -> None:
    engine = sys.argv[1] if len(sys.argv) > 1 else ""
    if engine == "atheris":
        import atheris

        import importlib

        with atheris.instrument_imports(include=["neurocodec"]):
            import neurocodec

            # what the registry would import later, uninstrumented: every module decoding runs
            for module in ("registry", "compose.likelihood", "exact.lstm", "entropy.losses"):
                importlib.import_module(f"neurocodec.{module}")
            for name in neurocodec.available_codecs():
                family = neurocodec.registry.read_config(name)["family"]
                for module in ("codec", "net"):
                    try:
                        importlib.import_module(f"neurocodec.families.{family}.{module}")
                    except ImportError:
                        pass
        stats = prepare()
        # libFuzzer exits the process at the end of its run: report from atexit too
        import atexit

        atexit.register(lambda: (print(stats.report(), flush=True), _save(stats)))
        run_atheris([sys.argv[0]] + sys.argv[2:], stats)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("engine", choices=["hypothesis", "random", "replay", "tally"])
    ap.add_argument("paths", nargs="*", help="replay: files or folders of inputs; tally: stats files")
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=None, help="random: stop after this long")
    ap.add_argument("--coverage", action="store_true", help="measure the decoding modules' line coverage (slower)")
    args = ap.parse_args()
    if args.engine == "tally":
        stats = Stats(crash_dir=None)
        paths = args.paths or sorted(RESULTS.glob("stats-*.json"))
        docs = [json.loads(Path(p).read_text()) for p in paths]
        for doc in docs:
            stats.merge(doc)
        print(stats.report())
        if not args.paths:  # the committed summary of every run
            runs = [f"- `{Path(p).name}`: " + _describe(doc) for p, doc in zip(paths, docs)]
            (RESULTS / "summary.md").write_text(
                "# Fuzzing: every run so far, added up\n\n`python fuzz/fuzz_decoders.py tally` (from the "
                "runs' figures in this folder; README *Fuzzing* says what is tried and what counts as a crash).\n\n"
                + "\n".join(runs) + "\n\n```\n" + stats.report() + "\n```\n")
        return
    cov = _start_coverage() if args.coverage else None  # with the imports and the corpus, as libFuzzer counts
    stats = prepare()
    try:
        if args.engine == "hypothesis":
            run_hypothesis(args.examples, stats, seed=args.seed)
        elif args.engine == "random":
            run_random(args.examples, stats, seed=args.seed or 0,
                       budget_s=None if args.minutes is None else 60 * args.minutes, save=True)
        else:
            for path in map(Path, args.paths):
                for f in sorted(path.iterdir()) if path.is_dir() else [path]:
                    run_one(f.read_bytes(), stats)
    finally:
        if cov is not None:
            stats.coverage = _stop_coverage(cov)
        print(stats.report(), flush=True)
        _save(stats)


# what decoding runs: the container, the API, the registry, the coding layers and every family
DECODE_PATH = ["api.py", "codec.py", "container.py", "limits.py", "registry.py", "inputs.py", "compose/*.py",
               "entropy/*.py", "exact/*.py", "families/*/*.py"]


def _start_coverage():
    """Line coverage of the decoding modules over the corpus and the fuzz inputs (`pip install
    coverage`; about 2.5 times slower, so for short runs)."""
    import coverage

    package = ROOT / "neurocodec"
    cov = coverage.Coverage(include=[str(package / p) for p in DECODE_PATH], data_file=None)
    cov.start()
    return cov


def _stop_coverage(cov) -> dict[str, list[int]]:
    """{module: [lines run, statements]} of every decoding module."""
    cov.stop()
    out = {}
    data = cov.get_data()
    for path in sorted(data.measured_files()):
        _, statements, _, missing, _ = cov.analysis2(path)
        if statements:
            out[str(Path(path).relative_to(ROOT))] = [len(statements) - len(missing), len(statements)]
    return out


def _describe(doc: dict) -> str:
    return (f"{doc.get('engine') or '?'} {' '.join(doc.get('argv', []))}, started {doc.get('started', '?')}: "
            f"{doc['inputs']:,} inputs in {doc['seconds'] / 60:,.0f} min")


def _save(stats: Stats) -> None:
    """The run's figures, as bench/results/fuzz/stats-<start>-<pid>.json: committed, so that
    `tally` adds up the runs of every session."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"engine": sys.argv[1] if len(sys.argv) > 1 else "", "argv": sys.argv[2:],
           "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(stats.started)),
           "inputs": stats.total(), "seconds": round(time.time() - stats.started),
           "per_decoder": {k: dict(v) for k, v in stats.counts.items()},
           "slowest_s": {k: round(v, 3) for k, v in stats.slowest.items()},
           "rss_growth_mb": {k: v >> 20 for k, v in stats.memory.items()},
           "crashes": stats.crashes, **({"coverage": stats.coverage} if stats.coverage else {})}
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(stats.started))
    with open(RESULTS / f"stats-{stamp}-{os.getpid()}.json", "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
