"""Embedding a .ncd image from its coded latent, without decoding its pixels (issue 12, item 5).

A small head maps the latent that a codec's decoder rebuilds from the entropy-coded symbols
alone (for `vq`: z_hat, the sum of the decoded code vectors, 1/16 of the image's size) to the
self-supervised encoder's feature vector (`neurocodec.features` of the original), trained by
distillation on the training photos. Both live in one vector space, so an archive of .ncd
files is searched with ordinary pixel queries, and no image is synthesized.

The head pins the codec weights it was trained on (their SHA-256); a file of other weights,
or of a codec without a head, is decoded and embedded from its pixels (`embed_file`).

    python -m neurocodec.perceptual.latent --codec vq --minutes 10   # train and ship the head
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .encoder import WEIGHTS_DIR

STAGES = (1, 2, 4, 8)  # the vq stage counts a head is trained on (every -q lands on one of 1..8)
BATCH = 16


class LatentHead(nn.Module):
    """(B, D, h, w) latent -> (B, dim) unit vectors, whatever h and w."""

    def __init__(self, latent: int, dim: int = 256, width: int = 192):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(latent, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, dim, 3, padding=1),
                                 nn.ReLU())
        self.out = nn.Linear(dim, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.out(self.net(z).mean(dim=(2, 3))), dim=1)


def _files(codec: str) -> tuple[Path, Path]:
    return WEIGHTS_DIR / f"latent-{codec}.safetensors", WEIGHTS_DIR / f"latent-{codec}.json"


@lru_cache(maxsize=4)
def load_head(codec: str) -> tuple[LatentHead, str] | None:
    """(the head for `codec`'s latents, the SHA-256 of the codec weights it was trained on), or
    None where there is none."""
    from safetensors.torch import load_file

    weights, meta = _files(codec)
    if not weights.exists():
        return None
    info = json.loads(meta.read_text())
    head = LatentHead(info["latent"], info["dim"], info["width"])
    head.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
    return head.eval(), info["codec_weights_sha256"]


def embed_file(blob: bytes) -> np.ndarray:
    """The feature vector of a .ncd image: from its latent where the codec has a head for these
    very weights (no synthesis), else from its decoded pixels (`neurocodec.features`)."""
    from .. import api, container, registry
    from ..errors import InputError
    from .embedding import features

    box = container.unpack(blob)
    if box.header.modality != "image":
        raise InputError("the .ncd file holds text, not an image")
    codec, head = registry.codec_for(box.header), load_head(box.header.codec)
    if head is not None and hasattr(codec, "latent") and codec.weights_digest.hex() == head[1]:
        with torch.inference_mode():
            return head[0](codec.latent(box))[0].numpy().astype(np.float32)
    return features(api.decode_container(box))


def _examples(codec, paths: list[Path]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(latent, teacher feature vector) for every photo and stage count."""
    from PIL import Image

    from .embedding import features
    from ..families.vq.codec import analyse

    out = []
    for i, path in enumerate(paths):
        x = np.asarray(Image.open(path).convert("RGB"))
        teacher = torch.from_numpy(features(x))
        indices = analyse(codec.net, x, max(STAGES))  # a prefix of the stages is the shorter code
        for n in STAGES:  # z_hat as the decoder rebuilds it (VQCodec.latent); float16: 795 photos x 4
            out.append((codec.z_hat(indices[:n]).half(), teacher))
        if i % 100 == 0:
            print(f"{i} / {len(paths)} photos", flush=True)
    return out


def train(codec_name: str, minutes: float, seed: int = 0) -> dict:
    """Distil the teacher's features into a head on `codec_name`'s latents; ship it."""
    from safetensors.torch import save_file

    from .. import registry
    from .data import training_paths

    torch.manual_seed(seed)
    codec = registry.load_codec(codec_name)
    data = Path("../shared/data/images")  # as the trainers' defaults: from the repository root
    start = time.time()
    examples = _examples(codec, training_paths(data / "train", data / "extra"))
    print(f"{len(examples)} examples in {time.time() - start:.0f} s", flush=True)
    head = LatentHead(codec.net.dim)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    rng, steps, begin = random.Random(seed), 0, time.time()
    while time.time() - begin < minutes * 60:
        frac = (time.time() - begin) / (minutes * 60)
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * frac))
        batch = rng.sample(examples, BATCH)
        student = torch.cat([head(z.float()) for z, _ in batch])
        teacher = torch.stack([t for _, t in batch])
        # distillation: the gallery's vectors must land on the very vectors pixel queries get
        # (InfoNCE against the batch's other photos, tried, pulled them off: 47 % top-1, not 61 %)
        cosine = (student * teacher).sum(1).mean()
        loss = 1 - cosine
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps % 200 == 0:
            print(f"step {steps} cosine {cosine.item():.4f} loss {loss.item():.4f}", flush=True)
    weights, meta = _files(codec_name)
    save_file({k: v.half().contiguous() for k, v in head.state_dict().items()}, str(weights))  # 1.6 MB
    info = {"codec": codec_name, "codec_weights_sha256": codec.weights_digest.hex(), "latent": codec.net.dim,
            "dim": 256, "width": 192, "stages": list(STAGES), "photos": len(examples) // len(STAGES), "steps": steps,
            "minutes": round((time.time() - start) / 60, 2), "last_cosine": round(cosine.item(), 4),
            "loss": "1 - cosine with the teacher's vector of the same photo",
            "teacher": "neurocodec.features (the shipped SSL encoder)", "hardware": "2-core CPU, one thread"}
    meta.write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="vq")
    ap.add_argument("--minutes", type=float, default=10)
    args = ap.parse_args()
    print(train(args.codec, args.minutes))


if __name__ == "__main__":
    main()
