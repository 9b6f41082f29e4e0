"""The shipped self-supervised encoder: features, the perceptual distance and `neurocodec embed`."""

import io
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA, load
from PIL import Image, ImageFilter

import neurocodec
from neurocodec.errors import InputError
from neurocodec.perceptual import distance, features
from neurocodec.perceptual.encoder import WEIGHTS_DIR, read_config

from test_cli import assert_clean_failure, run, run_process


def jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(sigma)))


def noise(a: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(np.rint(a + np.random.default_rng(0).normal(0, sigma, a.shape)), 0, 255).astype(np.uint8)


def test_shipped_weights_are_trained_and_small():
    config = read_config()
    assert config["training"]["steps"] >= 500 and "extra" in config["training"]["data"]
    assert (WEIGHTS_DIR / config["weights"]).stat().st_size < 5e6
    assert (WEIGHTS_DIR / "MODEL_CARD.md").exists()


def test_features_are_deterministic_unit_vectors_of_fixed_length(photo, photo_odd):
    v = features(photo)
    assert v.dtype == np.float32 and v.shape == (read_config()["arch"]["widths"][-1],)
    assert np.isclose(np.linalg.norm(v), 1, atol=1e-5)
    assert np.array_equal(v, features(photo)) and np.array_equal(v, features(Image.fromarray(photo)))
    assert features(photo_odd).shape == v.shape and features(photo[:40, :90]).shape == v.shape
    assert np.array_equal(v, neurocodec.features(photo))


def test_features_find_an_altered_copy(photo, photo_odd):
    """A cropped, darker, JPEG-recompressed copy is nearer its original than another photo."""
    h, w = photo.shape[:2]
    copy = jpeg((photo[h // 8 :, : w * 7 // 8] * 0.8).astype(np.uint8), 30)
    v = features(copy)
    assert v @ features(photo) > v @ features(photo_odd)


def test_features_refuse_what_is_not_an_image():
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((0, 8, 3), np.uint8), "x"):
        with pytest.raises(InputError):
            features(bad)


def test_distance_is_zero_for_identical_images_and_grows_with_each_distortion(photo_odd):
    a = photo_odd
    assert distance(a, a.copy()) == 0
    for distort, levels in ((jpeg, (90, 50, 10)), (blur, (0.5, 1, 2)), (noise, (2, 8, 20))):
        d = [distance(a, distort(a, level)) for level in levels]
        assert 0 < d[0] < d[1] < d[2], (distort.__name__, d)
    assert distance(Image.fromarray(a), Image.fromarray(jpeg(a, 50))) == distance(a, jpeg(a, 50))
    with pytest.raises(ValueError, match="differ in shape"):
        distance(a, a[1:])


def test_distance_is_a_bench_metric(photo):
    from neurocodec.bench.metrics import perceptual

    assert perceptual(photo, photo) == 0 and perceptual(photo, blur(photo, 2)) > 0


def test_import_neurocodec_loads_no_torch():
    code = "import sys, neurocodec; assert callable(neurocodec.features); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_embed_prints_one_vector_per_file(tmp_path, photo):
    proc = run("embed", DATA / "kodim23_crop.png", DATA / "kodim05_crop.png")
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(DATA / "kodim23_crop.png"), str(DATA / "kodim05_crop.png")]
    v = np.array(lines[0].split("\t")[1].split(), np.float32)
    assert np.allclose(v, features(photo), atol=1e-5)

    out = tmp_path / "vectors.npy"
    assert run("embed", "-o", out, DATA / "kodim23_crop.png", DATA / "kodim05_crop.png").returncode == 0
    assert np.load(out).shape == (2, v.size) and np.allclose(np.load(out)[0], v, atol=1e-6)


def test_embed_decodes_an_ncd_image_first(tmp_path):
    small = load("kodim05_crop.png")[:64, :64]
    blob = neurocodec.compress(small, codec="hyperprior", quality=90)
    (tmp_path / "small.ncd").write_bytes(blob)
    proc = run("embed", tmp_path / "small.ncd")
    assert proc.returncode == 0, proc.stderr.decode()
    v = np.array(proc.stdout.decode().split("\t")[1].split(), np.float32)
    assert np.allclose(v, features(neurocodec.decompress(blob)), atol=1e-5)


def test_embed_refuses_a_non_image(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture\n")
    proc = run_process("embed", tmp_path / "notes.txt")
    assert_clean_failure(proc, "notes.txt", "neither an image nor a .ncd file")
    assert proc.returncode == 1 and proc.stdout == b""


def test_fid_and_kid_measure_how_far_two_feature_distributions_are():
    from neurocodec.perceptual.realism import fid, kid

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    shifted = rng.normal(size=(2000, 8)) + np.array([1.0, 1.0] + [0.0] * 6)  # |mu|^2 = 2
    assert fid(a, b) < 0.05
    assert abs(fid(a, shifted) - 2.0) < 0.2
    same, spread = kid(a, b)
    far, _ = kid(a, shifted)
    assert abs(same) < 3 * spread + 1e-3 and far > 10 * max(spread, 1e-3)


def test_realism_features_come_from_256_px_patches_and_their_half_shifted_grid():
    from neurocodec.perceptual import load_encoder
    from neurocodec.perceptual.realism import patch_features, patches

    image = np.zeros((512, 768, 3), np.uint8)
    assert len(patches(image)) == 6 + 2  # 2 x 3, and 1 x 2 shifted by 128 px
    assert len(patches(image[:200])) == 0  # smaller than a patch: none
    feats = patch_features([image[:256, :512]], encoder=load_encoder())
    assert feats.shape == (2, load_encoder().dim)


def test_a_vq_file_is_embedded_from_its_latent_without_decoding_pixels(monkeypatch):
    """The head maps the decoded latent into the pixel features' space (cosine with the
    original's vector well above what other photos score), and no pixel is synthesized."""
    from neurocodec.families.vq.codec import VQCodec
    from neurocodec.perceptual.latent import embed_file

    x, other = load("kodim05_crop.png"), load("kodim23_crop.png")
    blob = neurocodec.compress(x, codec="vq", quality=50)

    def refuse(*args, **kwargs):
        raise AssertionError("the image was synthesized")

    monkeypatch.setattr(VQCodec, "synthesize", refuse)
    v = embed_file(blob)
    assert v.shape == features(x).shape and abs(float(np.linalg.norm(v)) - 1) < 1e-4
    assert float(v @ features(x)) > 0.85 and float(v @ features(x)) > float(v @ features(other)) + 0.1


def test_the_latent_head_pins_the_shipped_vq_weights():
    """Retraining vq changes its latent space: the head must be retrained with it (this fails
    until then; files of other weights are decoded and embedded from pixels meanwhile)."""
    from neurocodec import registry
    from neurocodec.perceptual.latent import load_head

    head, pinned = load_head("vq")
    assert pinned == registry.read_config("vq")["weights_sha256"]
