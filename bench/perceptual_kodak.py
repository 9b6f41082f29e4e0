"""Low-rate Kodak evaluation that does not grade itself (issue 12): the `perceptual` codec
against the best MSE-trained codec (`context`), JPEG, WebP and AVIF.

    python bench/perceptual_kodak.py [--images 24] [--codec perceptual]
        -> bench/results/perceptual_kodak.md, perceptual_kodak.csv, perceptual_crops/*.png
    python bench/perceptual_kodak.py --codec vq        # the same for another codec (issue 13)
        -> bench/results/vq_realism_kodak.md, vq_realism_kodak.csv, vq_crops/*.png

Per operating point (one quality of one codec, over the images): mean bpp, PSNR, MS-SSIM (dB),
the perceptual distance (neurocodec.perceptual: the encoder the perceptual codec learns from),
and FID / KID on 256-px patches from the *evaluation* encoder, trained apart and never a loss
(neurocodec.perceptual.realism). Side-by-side crops: for the first images, every codec at the
quality whose bpp is nearest the perceptual codec's default, saved as one PNG per image
(original, then the codecs, left to right) for a person to look at.
`--encoder loss` runs the realism metrics with the loss's own encoder: a dry run of the
plumbing only, labelled so in the output, never a result.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import neurocodec
from neurocodec.bench.baselines import get_baseline
from neurocodec.bench.metrics import ms_ssim, ms_ssim_db, psnr
from neurocodec.perceptual import distance, load_encoder
from neurocodec.perceptual.realism import fid, kid, load_eval_encoder, patch_features

from report import RESULTS, write_table

KODAK = Path(__file__).resolve().parent.parent.parent / "shared/data/images/kodak"
QUALITIES = {"context": (1, 6, 12, 19, 25, 31, 38), "jpeg": (1, 3, 5, 8, 12), "webp": (1, 3, 6, 10, 20),
             "avif": (1, 5, 10, 15, 20)}
CROP = 256  # side of the crops a person compares


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="perceptual")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--crops", type=int, default=4, help="images to save side-by-side crops of")
    ap.add_argument("--encoder", choices=("eval", "loss"), default="eval")
    args = ap.parse_args()
    encoder = load_eval_encoder() if args.encoder == "eval" else load_encoder()
    codecs = {}
    if args.codec in neurocodec.available_codecs():
        main_codec = neurocodec.load_codec(args.codec)
        codecs[args.codec] = (main_codec, tuple(main_codec.bench_qualities))
    codecs |= {n: (neurocodec.load_codec(n) if n == "context" else get_baseline(n), qs) for n, qs in QUALITIES.items()}
    paths = sorted(KODAK.glob("kodim*.png"))[: args.images]
    originals = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    load = os.getloadavg()[0]
    points: dict[tuple[str, int], dict] = {}
    for name, (codec, qualities) in codecs.items():
        for q in qualities:
            decoded, stats = [], []
            for x in originals:
                blob = codec.encode(x, quality=q)
                y = codec.decode(blob)
                decoded.append(y)
                stats.append((8 * len(blob) / (x.shape[0] * x.shape[1]), psnr(x, y), ms_ssim(x, y), distance(x, y)))
            points[name, q] = {"stats": np.mean(stats, axis=0), "decoded": decoded, "bpp": [s[0] for s in stats]}
            print(name, q, np.round(points[name, q]["stats"], 4), flush=True)
    real = patch_features(originals, encoder)
    rows, csv = [], ["codec,quality,bpp,psnr,ms_ssim_db,distance,fid,kid"]
    for (name, q), point in points.items():
        fake = patch_features(point["decoded"], encoder)
        f, (k, k_sd) = fid(real, fake), kid(real, fake)
        b, p, m, d = point["stats"]
        rows.append(f"| {name} | {q} | {b:.3f} | {p:.2f} | {ms_ssim_db(m):.2f} | {d:.4f} | {f:.2f} | {1000 * k:.2f} ± {1000 * k_sd:.2f} |")
        csv.append(f"{name},{q},{b:.5f},{p:.4f},{ms_ssim_db(m):.4f},{d:.5f},{f:.4f},{k:.6f}")
    dry = "" if args.encoder == "eval" else " DRY RUN: realism from the loss's own encoder, not a result."
    write_table(
        f"{stem(args)}.md", f"Kodak at low rates: {', '.join(codecs)}",
        f"`python bench/perceptual_kodak.py --codec {args.codec} --images {args.images}`: {len(paths)} Kodak images, real files decoded "
        f"back, load average {load:.1f} at the start. FID and KID on {len(real)} patches of {CROP} px (and the "
        "half-shifted grid) from the evaluation encoder; distance: neurocodec.perceptual.distance, the perceptual codec's loss (lower is "
        f"better for all but PSNR and MS-SSIM).{dry}",
        ["<codec", "quality", "bpp", "PSNR dB", "MS-SSIM dB", "distance", "FID", "KID x 1000"], rows)
    (RESULTS / f"{stem(args)}.csv").write_text("\n".join(csv) + "\n")
    save_crops(args, codecs, points, originals, paths)


def stem(args) -> str:
    return "perceptual_kodak" if args.codec == "perceptual" else f"{args.codec}_realism_kodak"


def save_crops(args, codecs: dict, points: dict, originals: list[np.ndarray], paths: list[Path]) -> None:
    """One PNG per image: the original's centre crop, then each codec's at the bpp nearest the
    reference codec's default quality on that image."""
    ref = args.codec if args.codec in codecs else "context"
    ref_q = getattr(codecs[ref][0], "default_quality", codecs[ref][1][len(codecs[ref][1]) // 2])
    ref_q = ref_q if (ref, ref_q) in points else codecs[ref][1][0]
    folder = RESULTS / ("perceptual_crops" if args.codec == "perceptual" else f"{args.codec}_crops")
    folder.mkdir(parents=True, exist_ok=True)
    for i, (x, path) in enumerate(zip(originals[: args.crops], paths)):
        target = points[ref, ref_q]["bpp"][i]
        r, c = (x.shape[0] - CROP) // 2, (x.shape[1] - CROP) // 2
        tiles, labels = [x[r : r + CROP, c : c + CROP]], ["original"]
        for name, (_, qualities) in codecs.items():
            q = min(qualities, key=lambda q: abs(points[name, q]["bpp"][i] - target))
            tiles.append(points[name, q]["decoded"][i][r : r + CROP, c : c + CROP])
            labels.append(f"{name} q{q} {points[name, q]['bpp'][i]:.3f} bpp")
        canvas = Image.new("RGB", (len(tiles) * (CROP + 4), CROP + 16), "white")
        draw = ImageDraw.Draw(canvas)
        for j, (tile, label) in enumerate(zip(tiles, labels)):
            canvas.paste(Image.fromarray(tile), (j * (CROP + 4), 16))
            draw.text((j * (CROP + 4) + 2, 2), label, fill="black")
        canvas.save(folder / f"{path.stem}.png", optimize=True)


if __name__ == "__main__":
    main()
