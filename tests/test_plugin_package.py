"""A separate package ships a family and a codec folder: installed with pip (a real wheel,
made here), neurocodec finds both through entry points, with no edit to neurocodec."""

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import pytest

CODEC = '''
"""A tiny family: bytes under a Laplace centred on the previous byte (its scale is the weight)."""
import numpy as np
from neurocodec import compose, registry
from neurocodec.entropy import DiscretizedLaplace


@registry.family("tiny")
class TinyCodec(compose.LikelihoodCodec):
    exact = False

    def __init__(self, config, weights, weights_digest):
        super().__init__(config["name"], config=config, weights_digest=weights_digest, modality="text")
        self.scale = float(weights["scale"][0])

    def part_step(self, shapes, params):
        n = shapes[0][0]

        def predict(canvas, index):
            prev = canvas[index[0] - 1] if index[0][0] > 0 else np.array([32])
            return DiscretizedLaplace(prev.astype(float), np.full(1, self.scale), 0, 255)

        return compose.Each([compose.Autoregressive(predict, (n,), [(np.array([i]),) for i in range(n)], name="bytes")])
'''


def _wheel(path, files: dict[str, bytes]) -> None:
    record = []
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append("nc_tiny-0.1.dist-info/RECORD,,")
        z.writestr("nc_tiny-0.1.dist-info/RECORD", "\n".join(record) + "\n")


def test_a_family_from_another_package(tmp_path):
    from safetensors.torch import save

    import torch

    weights = save({"scale": torch.tensor([6.0])})
    config = {"name": "tiny", "family": "tiny", "modality": "text", "lossless": True,
              "weights": "weights.safetensors", "weights_sha256": hashlib.sha256(weights).hexdigest()}
    dist = "nc_tiny-0.1.dist-info/"
    wheel = tmp_path / "nc_tiny-0.1-py3-none-any.whl"
    _wheel(wheel, {
        "nc_tiny/__init__.py": b"",
        "nc_tiny/codec.py": CODEC.encode(),
        "nc_tiny/codecs/__init__.py": b"",
        "nc_tiny/codecs/tiny/config.json": json.dumps(config).encode(),
        "nc_tiny/codecs/tiny/weights.safetensors": weights,
        "nc_tiny/codecs/tiny/MODEL_CARD.md": b"# tiny\nA test family.\n",
        dist + "METADATA": b"Metadata-Version: 2.1\nName: nc_tiny\nVersion: 0.1\n",
        dist + "WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        dist + "entry_points.txt": b"[neurocodec.families]\ntiny = nc_tiny.codec\n\n[neurocodec.codecs]\nnc_tiny = nc_tiny.codecs\n",
    })
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                          str(wheel)], capture_output=True, text=True)
    if pip.returncode != 0 and "No module named pip" in pip.stderr:
        pytest.skip("no pip in this environment")
    assert pip.returncode == 0, pip.stderr
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    (tmp_path / "note.txt").write_bytes(b"Hello, hello, tiny family! " * 20)

    def run(*args):
        r = subprocess.run([sys.executable, "-m", "neurocodec.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "tiny" in run("codecs")
    run("compress", "-c", "tiny", "note.txt")
    run("decompress", "-o", "back.txt", "note.txt.ncd")
    assert (tmp_path / "back.txt").read_bytes() == (tmp_path / "note.txt").read_bytes()
    assert "codec tiny" in run("info", "note.txt.ncd")
    assert "tiny" in run("train", "--help")
