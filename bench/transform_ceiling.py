"""What bounds a hyperprior-family codec's top rate: PSNR of its transforms with no rounding.

    python bench/transform_ceiling.py [CODEC_FOLDER ...]   (default: codecs/context)

For the top-left 256 x 256 of kodim01 and kodim13, at the three highest trained levels:
g_s(g_a(x)) with the gained latent unrounded (the most that level's gains could give, at any
rate) and rounded (means left out, so a little worse than coding). Prints dB; writes nothing.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image

from neurocodec.families.context.spec import ContextSpec
from neurocodec.train.checkpoint import load_codec_folder


def main(folders: list[str]) -> None:
    torch.set_num_threads(1)
    spec = ContextSpec()
    for folder in folders or ["codecs/context"]:
        config, weights = load_codec_folder(folder)
        state, extra = spec.from_codec(config, weights)
        net = spec.build(extra["arch"])
        spec.load(net, state)
        net.eval()
        for n in ("01", "13"):
            rgb = np.asarray(Image.open(f"../shared/data/images/kodak/kodim{n}.png").convert("RGB"))[:256, :256]
            x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
            db = lambda y: float(-10 * torch.log10(((y.clamp(0, 1) - x) ** 2).mean()))  # noqa: E731
            with torch.no_grad():
                y = net.g_a(x)
                cells = []
                for level in range(net.levels - 1, max(net.levels - 4, -1), -1):
                    g, ig = net.gains(torch.tensor([float(level)]))
                    cells.append(f"level {level}: unrounded {db(net.g_s(y * g * ig)):.2f} dB, "
                                 f"rounded {db(net.g_s(torch.round(y * g) * ig)):.2f} dB")
            print(f"{folder} kodim{n}: " + ", ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
