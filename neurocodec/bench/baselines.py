"""The classic image codecs, wrapped in the same protocol as neurocodec codecs.

Each baseline has `name`, `modality`, `lossless`, `bench_qualities`, `default_quality`,
`encode(img, quality) -> bytes` and `decode(bytes) -> HxWx3 uint8`, so the benchmark runner
treats them and the learned codecs alike. The lossy sweeps were chosen to span about
0.1 to 2 bits per pixel on kodim23 (harder Kodak photos reach 3 to 5 bpp at the top).
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image


def _rgb(img) -> np.ndarray:
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.dtype} {img.shape}")
    return img


def _imagecodecs(func: str) -> Callable:
    """An imagecodecs function, or a clear error if this build of imagecodecs lacks it."""
    try:
        import imagecodecs
    except ImportError as e:
        raise RuntimeError(f"this baseline needs imagecodecs ({func}); install imagecodecs") from e
    codec = func.split("_")[0].upper()
    if not hasattr(imagecodecs, func) or not getattr(getattr(imagecodecs, codec, None), "available", False):
        raise RuntimeError(f"imagecodecs {imagecodecs.__version__} was built without {func}")
    return getattr(imagecodecs, func)


class Baseline:
    name: str
    lossless: bool
    modality = "image"
    bench_qualities: tuple
    default_quality: int | None

    def __init__(self, name: str, lossless: bool, qualities: tuple):
        self.name, self.lossless, self.bench_qualities = name, lossless, qualities
        self.default_quality = None if lossless else qualities[len(qualities) // 2]

    def encode(self, img, quality: int | None = None) -> bytes:
        img = _rgb(img)
        if self.lossless:
            return bytes(self._encode(img, None))
        quality = self.default_quality if quality is None else int(quality)
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be from 1 to 100, got {quality}")
        return bytes(self._encode(img, quality))

    def _encode(self, img: np.ndarray, quality: int | None) -> bytes:
        raise NotImplementedError

    def decode(self, blob: bytes) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Baseline '{self.name}' ({'lossless' if self.lossless else 'lossy'})>"


class _Pillow(Baseline):
    def __init__(self, name: str, lossless: bool, qualities: tuple, save_args: dict):
        super().__init__(name, lossless, qualities)
        self.save_args = save_args

    def _encode(self, img, quality):
        buf = io.BytesIO()
        args = self.save_args if quality is None else {**self.save_args, "quality": quality}
        Image.fromarray(img).save(buf, **args)
        return buf.getvalue()

    def decode(self, blob):
        with Image.open(io.BytesIO(blob)) as im:
            return np.asarray(im.convert("RGB"))


class _ImageCodecs(Baseline):
    """A format of imagecodecs; `quality_arg` names the encoder argument the quality goes to."""

    def __init__(self, name, lossless, qualities, fmt: str, quality_arg: str | None, encode_args: dict):
        super().__init__(name, lossless, qualities)
        self.fmt, self.quality_arg, self.encode_args = fmt, quality_arg, encode_args

    def _encode(self, img, quality):
        args = self.encode_args if quality is None else {**self.encode_args, self.quality_arg: quality}
        return _imagecodecs(f"{self.fmt}_encode")(img, **args)

    def decode(self, blob):
        out = _imagecodecs(f"{self.fmt}_decode")(blob)
        return _rgb(out if out.ndim == 3 else np.repeat(out[:, :, None], 3, axis=2))


def _avif_420():
    """AVIF's 4:2:0 pixel format where imagecodecs exposes it, else its default."""
    try:
        import imagecodecs

        return imagecodecs.AVIF.PIXEL_FORMAT.YUV420
    except (ImportError, AttributeError):
        return None


BASELINES: dict[str, Callable[[], Baseline]] = {
    "jpeg": lambda: _Pillow("jpeg", False, (5, 10, 20, 30, 50, 70, 80, 90, 95), {"format": "JPEG", "subsampling": 2}),
    "webp": lambda: _Pillow("webp", False, (1, 5, 15, 30, 50, 70, 80, 90, 95), {"format": "WEBP", "method": 6}),
    # imagecodecs' AVIF `level` is libavif's quality, 0 (worst) to 100 (lossless)
    "avif": lambda: _ImageCodecs(
        "avif", False, (25, 35, 45, 55, 65, 75, 82, 88, 93), "avif", "level", {"speed": 6, "pixelformat": _avif_420()}
    ),
    # imagecodecs' JPEG XL `level` is a quality that libjxl maps to a butteraugli distance (90 -> 1.0)
    "jxl": lambda: _ImageCodecs("jxl", False, (10, 20, 35, 50, 60, 70, 80, 90, 95), "jpegxl", "level", {"effort": 7}),
    "png": lambda: _Pillow("png", True, (None,), {"format": "PNG", "compress_level": 9}),
    "webp-lossless": lambda: _Pillow(
        "webp-lossless", True, (None,), {"format": "WEBP", "lossless": True, "method": 6, "quality": 100}
    ),
    "jpeg2000": lambda: _ImageCodecs("jpeg2000", True, (None,), "jpeg2k", None, {"level": 0, "reversible": True}),
    "jxl-lossless": lambda: _ImageCodecs(
        "jxl-lossless", True, (None,), "jpegxl", None, {"lossless": True, "effort": 9}
    ),
    # cjxl's default effort, for the speed a user gets without asking
    "jxl-lossless-e7": lambda: _ImageCodecs(
        "jxl-lossless-e7", True, (None,), "jpegxl", None, {"lossless": True, "effort": 7}
    ),
}

LOSSY = ("jpeg", "webp", "avif", "jxl")
LOSSLESS = ("png", "webp-lossless", "jpeg2000", "jxl-lossless-e7", "jxl-lossless")


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES[name]()
    except KeyError:
        raise KeyError(f"unknown baseline '{name}'; known: {', '.join(BASELINES)}") from None
