"""How a named codec is found, loaded and verified, and how families make themselves known.

A family is a codec class that registers itself with the `family` decorator, naming its
training spec (for `neurocodec train FAMILY`) and its typed config. neurocodec finds its own
families as the packages of `neurocodec/families/` and other packages' through the Python
entry-point group `neurocodec.families` (name = family, value = the module that registers
it), and imports a family's module only when a codec of that family is loaded or trained.

A codec is a folder `<name>/` holding `config.json` (its family, name, modality and
settings), `weights.safetensors` and `MODEL_CARD.md`. Folders are looked up, in order, in
the paths of `$NEUROCODEC_CODECS` (separated by os.pathsep), in `codecs/` of a source
checkout, in the copy of `codecs/` that a wheel installs inside the package, and in the
packages other distributions name in the entry-point group `neurocodec.codecs`. Weights are
checked against the SHA-256 in the config before use; the digest is what a .ncd file records.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import numbers
import os
from pathlib import Path

from .codec import Codec
from .errors import CodecNotFound, InputError, NeurocodecError

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
CARD = "MODEL_CARD.md"

ENTRY_POINTS = "neurocodec.families"
_FAMILIES: dict[str, type] = {}  # family name (and aliases) -> codec class, filled by `family`


def family(name: str, *, spec: str | None = None, config: type | None = None, aliases: tuple[str, ...] = ()):
    """Class decorator: register a codec class as family `name`. `spec` is "module:Class" of
    its `train.spec.TrainSpec`; `config` a dataclass that config.json must fit (checked at
    load, so a wrong or missing setting is reported by name)."""

    def register(cls):
        cls.family, cls.train_spec, cls.config_type = name, spec, config
        for n in (name, *aliases):
            _FAMILIES[n] = cls
        return cls

    return register


def family_sources() -> dict[str, str]:
    """Every known family and the module that registers it, without importing any."""
    import importlib.metadata
    import pkgutil

    from . import families as builtin

    found = {m.name: f"{builtin.__name__}.{m.name}.codec" for m in pkgutil.iter_modules(builtin.__path__) if m.ispkg}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
        found.setdefault(ep.name, ep.value.split(":")[0])
    return found


def codec_class(name: str) -> type:
    """The codec class of family `name`, importing the module that registers it."""
    if name not in _FAMILIES:
        sources = family_sources()
        for module in [sources[name]] if name in sources else sources.values():  # an alias: look everywhere
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise NeurocodecError(f"family '{name}' cannot be loaded ({module}: {e})") from None
            if name in _FAMILIES:
                break
    if name not in _FAMILIES:
        raise NeurocodecError(f"unknown codec family '{name}' (known: {', '.join(sorted(family_sources()))})")
    return _FAMILIES[name]


def train_spec(name: str):
    """The `TrainSpec` class of family `name`."""
    cls = codec_class(name)
    if not cls.train_spec:
        raise NeurocodecError(f"family '{name}' has no training spec")
    module, attr = cls.train_spec.split(":")
    return getattr(importlib.import_module(module), attr)


def check_config(cls: type, name: str, config: dict) -> None:
    """A codec folder's config.json against its family's typed config."""
    import dataclasses

    if cls.config_type is None:
        return
    fields = {f.name: f for f in dataclasses.fields(cls.config_type)}
    required = {n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = required - config.keys()
    if missing:
        raise NeurocodecError(f"codec '{name}': {CONFIG} lacks {', '.join(sorted(missing))}")
    types = {"int": int, "float": (int, float), "str": str, "dict": dict, "list": list, "bool": bool}
    for key, f in fields.items():
        want = types.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
        if key in config and want and (not isinstance(config[key], want) or isinstance(config[key], bool) and want is int):
            raise NeurocodecError(f"codec '{name}': '{key}' in {CONFIG} must be {f.type}, got {config[key]!r}")
    try:
        cls.config_type(**{k: v for k, v in config.items() if k in fields})
    except (TypeError, ValueError) as e:
        raise NeurocodecError(f"codec '{name}': invalid {CONFIG} ({e})") from None


# what `compress` uses when no codec is named; lossless images get the best one installed
DEFAULTS = {("image", False): "hyperprior", ("text", True): "text", ("text", False): "text"}
# the measured figure in config.json that ranks candidates (lower is better; bench/record_kodak.py)
BEST_BY = {("image", True): "kodak.bpsp", ("image", False): "kodak.bd_rate_jpeg"}


CODEC_ENTRY_POINTS = "neurocodec.codecs"  # value: a package whose folder holds codec folders


def search_path() -> list[Path]:
    """Where codec folders are looked up, in order: $NEUROCODEC_CODECS, a source checkout's
    codecs/, the copy a wheel installs, then folders that other packages declare."""
    paths = [Path(p) for p in os.environ.get("NEUROCODEC_CODECS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    paths += [here.parent / "codecs", here / "_codecs", *_declared_folders()]
    return [p for p in paths if p.is_dir()]


@functools.lru_cache(maxsize=1)
def _declared_folders() -> tuple[Path, ...]:
    """The codec folders other packages declare. Read once a process, like the codecs
    `load_codec` keeps: scanning every installed distribution's metadata costs about 7 ms, paid
    by each decode of a file with retired weights before."""
    import importlib.metadata
    import importlib.util

    paths = []
    for ep in importlib.metadata.entry_points(group=CODEC_ENTRY_POINTS):
        spec = importlib.util.find_spec(ep.value)
        if spec is not None and spec.submodule_search_locations:
            paths += [Path(p) for p in spec.submodule_search_locations]
    return tuple(paths)


def _folders() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in search_path():
        for cfg in sorted(root.glob(f"*/{CONFIG}")):
            found.setdefault(cfg.parent.name, cfg.parent)
    return found


def available_codecs() -> list[str]:
    """The installed codecs (folders on the search path)."""
    return sorted(_folders())


def codec_folder(name: str) -> Path:
    folders = _folders()
    if name not in folders:
        known = ", ".join(sorted(folders)) or "none"
        raise CodecNotFound(f"codec '{name}' is not installed (installed: {known})")
    return folders[name]


def read_config(name: str) -> dict:
    folder = codec_folder(name)
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise NeurocodecError(f"codec '{name}' has an unreadable {CONFIG}: {e}") from None
    config.setdefault("name", name)
    return config


def codec_info(name: str) -> dict:
    """What `neurocodec codecs` shows: modality, lossless, size on disk and headline result."""
    folder = codec_folder(name)
    config = read_config(name)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return {
        "name": name,
        "family": config.get("family", "?"),
        "modality": config.get("modality", "?"),
        "lossless": bool(config.get("lossless", False)),
        "size_bytes": size,
        "headline": config.get("headline", ""),
        "path": str(folder),
    }


def file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def weights_by_digest(name: str, sha256: str) -> dict:
    """The weights of codec `name` whose file has SHA-256 `sha256` (hex): the installed ones,
    or the retired copy that kept them. What a codec built on another codec's weights loads
    (vqlossless on vq), so that retraining the other codec never changes it."""
    from safetensors.torch import load_file

    folder = codec_folder(name)
    for candidate in (folder, folder / RETIRED / str(sha256)[:12]):
        if (candidate / CONFIG).exists() and json.loads((candidate / CONFIG).read_text()).get("weights_sha256") == sha256:
            path = candidate / WEIGHTS
            if file_digest(path).hex() != sha256:
                raise NeurocodecError(f"codec '{name}' is damaged: {path} does not match its SHA-256")
            return load_file(str(path))
    raise NeurocodecError(f"the weights {str(sha256)[:12]} of codec '{name}' are not installed")


_REGISTERED: dict[str, Codec] = {}


def register(codec: Codec) -> Codec:
    """Make a codec object (e.g. a `compose.LikelihoodCodec` around your own model) known by
    its name in this process, so `neurocodec.decompress` and `load_codec` find it. It takes
    precedence over an installed codec of the same name."""
    if not isinstance(codec, Codec):
        raise TypeError(f"register() takes a neurocodec Codec, got {type(codec).__name__}")
    _REGISTERED[codec.name] = codec
    return codec


def load_codec(name: str) -> Codec:
    """The codec `name`: a registered object, else the installed folder, its weights verified
    (loaded once per process)."""
    return _REGISTERED[name] if name in _REGISTERED else _load_installed(name)


def _clear() -> None:
    _load_installed.cache_clear()
    _load_folder.cache_clear()


load_codec.cache_clear = _clear  # after codec folders change


@functools.lru_cache(maxsize=None)
def _load_installed(name: str) -> Codec:
    return _load_folder(codec_folder(name), name)


@functools.lru_cache(maxsize=None)
def _load_folder(folder: Path, name: str) -> Codec:
    from safetensors.torch import load_file

    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise NeurocodecError(f"codec '{name}' has an unreadable {CONFIG}: {e}") from None
    config.setdefault("name", name)
    cls = codec_class(str(config.get("family")))
    check_config(cls, name, config)
    path = folder / config.get("weights", WEIGHTS)
    digest = file_digest(path)
    if config.get("weights_sha256") != digest.hex():
        raise NeurocodecError(f"codec '{name}' is damaged: {path.name} does not match its SHA-256 in {CONFIG}")
    return cls(config, load_file(str(path)), digest)


def best_codec(modality: str, lossless: bool, metric: str) -> str | None:
    """The installed codec of this kind with the lowest `metric` (a dotted path into its
    config, e.g. "kodak.bpsp"), if any has that figure. A codec for part of the rate range
    (a `top_level` below its network's highest or a `bottom_level` below 0, as `perceptual`)
    is never the default: its BD-rate is over other rates than the others'."""
    scored = []
    for name in available_codecs():
        config = read_config(name)
        if config.get("modality") != modality or bool(config.get("lossless")) != lossless:
            continue
        if config.get("top_level") is not None and config.get("top_level") != config.get("levels", 0) - 1 \
                or config.get("bottom_level", 0):
            continue
        value = config
        for key in metric.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            scored.append((float(value), name))
    return min(scored)[1] if scored else None


def default_codec(modality: str, lossless: bool) -> str:
    metric = BEST_BY.get((modality, lossless))
    name = (best_codec(modality, lossless, metric) if metric else None) or DEFAULTS.get((modality, lossless))
    if name is None:
        kind = "lossless" if lossless else "lossy"
        raise CodecNotFound(f"no {kind} {modality} codec is installed")
    return name


# `auto` (neurocodec.compress): per effort, the slowest decode that it tries, in seconds per
# Kodak image as recorded in each codec's config (`kodak.decode_s`); None: every codec.
# Effort 0 tries the codecs that decode in a few seconds (idf, bitsback: 2.2 s), 1 adds the
# slow autoregressive ones (pixelcnn: 22 s).
AUTO_DECODE_SECONDS = (5.0, None)


def auto_candidates(modality: str, effort: int) -> list[str]:
    """The lossless codecs for `modality` that `auto` tries at `effort` (at least the default
    lossless one). InputError for an effort it does not have."""
    if isinstance(effort, bool) or not isinstance(effort, numbers.Integral) or effort not in range(len(AUTO_DECODE_SECONDS)):
        levels = ", ".join(map(str, range(len(AUTO_DECODE_SECONDS))))
        raise InputError(f"codec 'auto' takes effort {levels}, got {effort!r}")
    limit, names = AUTO_DECODE_SECONDS[effort], []
    for name in available_codecs():
        config = read_config(name)
        if config.get("modality") != modality or not config.get("lossless"):
            continue
        seconds = (config.get("kodak") or {}).get("decode_s")
        if limit is None or (isinstance(seconds, (int, float)) and seconds <= limit):
            names.append(name)
    return names or [default_codec(modality, True)]


RETIRED = "retired"  # <codec>/retired/<first 12 hex of the digest>/: earlier weights, kept for their files


def write_codec_folder(folder: Path, config: dict, weights: dict) -> None:
    """Write `weights` (safetensors) and `config` (with the weights' SHA-256) into `folder`,
    keeping any MODEL_CARD.md and headline already there. Weights being replaced move to
    `retired/<digest>/` with their config and card, so that files written with them still
    decode (`codec_for`)."""
    import shutil

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    old = folder / CONFIG
    if old.exists():
        previous = json.loads(old.read_text())
        config.setdefault("headline", previous.get("headline", ""))
        if (folder / WEIGHTS).exists() and previous.get("weights_sha256"):
            keep = folder / RETIRED / previous["weights_sha256"][:12]
            keep.mkdir(parents=True, exist_ok=True)
            for name in (CONFIG, WEIGHTS, CARD):
                if (folder / name).exists():
                    shutil.copy2(folder / name, keep / name)
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(weights, str(tmp))
    os.replace(tmp, folder / WEIGHTS)
    config = dict(config, weights=WEIGHTS, weights_sha256=file_digest(folder / WEIGHTS).hex())
    (folder / (CONFIG + ".tmp")).write_text(json.dumps(config, indent=2) + "\n")
    os.replace(folder / (CONFIG + ".tmp"), old)
    load_codec.cache_clear()


def codec_for(header) -> Codec:
    """The codec that decodes a file with this header: the codec of its name, or the retired
    weights of that codec that the file was written with."""
    codec = load_codec(header.codec)
    if codec.weights_digest == header.weights_digest or header.codec in _REGISTERED:
        return codec
    retired = codec_folder(header.codec) / RETIRED / header.weights_digest.hex()[:12]
    return _load_folder(retired, header.codec) if (retired / CONFIG).exists() else codec
