"""How a named codec is found, loaded and verified.

A codec is a folder `<name>/` holding `config.json` (its family, name, modality and
settings), `weights.safetensors` and `MODEL_CARD.md`. Folders are looked up, in order, in
the paths of `$NEUROCODEC_CODECS` (separated by os.pathsep), in `codecs/` of a source
checkout, and in the copy of `codecs/` that a wheel installs inside the package. Weights are
checked against the SHA-256 in the config before use; the digest is what a .ncd file records.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
from pathlib import Path

from .codec import Codec
from .errors import CodecNotFound, NeurocodecError

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
CARD = "MODEL_CARD.md"

# family -> "module:class"; each class takes (config, weights, weights_digest)
FAMILIES = {
    "hyperprior": "neurocodec.families.hyperprior.codec:HyperpriorCodec",
    "byte_lstm": "neurocodec.families.text.codec:TextCodec",
    "pixelcnn": "neurocodec.families.pixelcnn.codec:PixelCNNCodec",
    "idf": "neurocodec.families.idf.codec:IDFCodec",
    "bitsback": "neurocodec.families.bitsback.codec:BitsBackCodec",
}

# what `compress` uses when no codec is named; lossless images get the best one installed
DEFAULTS = {("image", False): "hyperprior", ("text", True): "text", ("text", False): "text"}
BEST_BY = {("image", True): "kodak.bpsp"}  # the measured figure in config.json that ranks candidates


def search_path() -> list[Path]:
    paths = [Path(p) for p in os.environ.get("NEUROCODEC_CODECS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    paths += [here.parent / "codecs", here / "_codecs"]
    return [p for p in paths if p.is_dir()]


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


load_codec.cache_clear = lambda: _load_installed.cache_clear()  # after codec folders change


@functools.lru_cache(maxsize=None)
def _load_installed(name: str) -> Codec:
    from safetensors.torch import load_file

    folder = codec_folder(name)
    config = read_config(name)
    family = config.get("family")
    if family not in FAMILIES:
        raise NeurocodecError(f"codec '{name}' is of unknown family '{family}'")
    path = folder / config.get("weights", WEIGHTS)
    digest = file_digest(path)
    if config.get("weights_sha256") != digest.hex():
        raise NeurocodecError(f"codec '{name}' is damaged: {path.name} does not match its SHA-256 in {CONFIG}")
    module, cls = FAMILIES[family].split(":")
    codec_class = getattr(importlib.import_module(module), cls)
    return codec_class(config, load_file(str(path)), digest)


def best_codec(modality: str, lossless: bool, metric: str) -> str | None:
    """The installed codec of this kind with the lowest `metric` (a dotted path into its
    config, e.g. "kodak.bpsp"), if any has that figure."""
    scored = []
    for name in available_codecs():
        config = read_config(name)
        if config.get("modality") != modality or bool(config.get("lossless")) != lossless:
            continue
        value = config
        for key in metric.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            scored.append((float(value), name))
    return min(scored)[1] if scored else None


def default_codec(modality: str, lossless: bool) -> str:
    metric = BEST_BY.get((modality, lossless))
    name = best_codec(modality, lossless, metric) if metric else DEFAULTS.get((modality, lossless))
    if name is None:
        kind = "lossless" if lossless else "lossy"
        raise CodecNotFound(f"no {kind} {modality} codec is installed")
    return name


def write_codec_folder(folder: Path, config: dict, weights: dict) -> None:
    """Write `weights` (safetensors) and `config` (with the weights' SHA-256) into `folder`,
    keeping any MODEL_CARD.md and headline already there."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    old = folder / CONFIG
    if old.exists() and "headline" not in config:
        config["headline"] = json.loads(old.read_text()).get("headline", "")
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(weights, str(tmp))
    os.replace(tmp, folder / WEIGHTS)
    config = dict(config, weights=WEIGHTS, weights_sha256=file_digest(folder / WEIGHTS).hex())
    (folder / (CONFIG + ".tmp")).write_text(json.dumps(config, indent=2) + "\n")
    os.replace(folder / (CONFIG + ".tmp"), old)
    load_codec.cache_clear()
