"""Lets Pillow read and write .ncd images once neurocodec is imported.

    Image.open("photo.ncd")                               # any image codec
    im.save("photo.ncd")                                  # the default lossy codec
    im.save("photo.ncd", quality=80)                      # its quality, 1..100
    im.save("photo.ncd", lossless=True)                   # the best lossless codec
    im.save("photo.ncd", codec="pixelcnn")                # a named codec

Saving raises neurocodec's own errors (InputError, CodecNotFound, LimitError ...), e.g. for an
image with an alpha channel.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from . import container
from .errors import NeurocodecError


def _accept(prefix: bytes) -> bool:
    return container.is_ncd(prefix)


class NcdImageFile(ImageFile.ImageFile):
    format = "NCD"
    format_description = "neurocodec learned image compression"

    def _open(self) -> None:
        try:
            self._box = container.read(self.fp)
        except NeurocodecError as e:
            raise SyntaxError(str(e)) from None
        h = self._box.header
        if h.modality != "image":
            raise SyntaxError(f"{h.codec} file holds {h.modality}, not an image")
        if len(h.shape) != 3 or h.shape[2] != 3 or min(h.shape) < 1:
            raise SyntaxError(f"corrupted .ncd file: an image of shape {h.shape}")
        self._mode = "RGB"
        self._size = (h.shape[1], h.shape[0])
        self.info["codec"] = h.codec
        self.tile = []

    def load(self):
        if self.tile == [] and getattr(self, "_box", None) is not None:
            from .api import decode_container

            box, self._box = self._box, None
            pixels = decode_container(box)
            self.im = Image.frombuffer("RGB", self.size, pixels.tobytes(), "raw", "RGB", 0, 1).im
        return Image.Image.load(self)


Image.register_open(NcdImageFile.format, NcdImageFile, _accept)
Image.register_extension(NcdImageFile.format, ".ncd")


def _save(im: Image.Image, fp, filename) -> None:
    from . import api

    info = im.encoderinfo
    blob = api.compress(
        im, codec=info.get("codec"), quality=info.get("quality"), lossless=bool(info.get("lossless", False))
    )
    fp.write(blob)


Image.register_save(NcdImageFile.format, _save)
