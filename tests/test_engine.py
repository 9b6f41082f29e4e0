"""`--engine dask` (issue 15): files coded on a cluster's workers, written as without it.

One local cluster of 2 worker processes (neurocodec.engine.Cluster, as `--engine dask
--workers 2` starts it) serves every test here; the commands reach it with --address."""

import shutil

import numpy as np
import pytest
from PIL import Image
from click.testing import CliRunner
from conftest import DATA

pytest.importorskip("distributed")

from neurocodec import engine, streaming  # noqa: E402
from neurocodec.cli import main  # noqa: E402

IMAGES = ["kodim23_crop.png", "kodim05_crop.png"]


@pytest.fixture(scope="module")
def cluster():
    with engine.Cluster(workers=2) as c:
        yield c


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout_bytes.decode(), r.stderr_bytes.decode()


def folder(root, name):
    d = root / name
    d.mkdir()
    for i, im in enumerate(IMAGES + IMAGES[:1]):  # 3 images: a worker codes several
        shutil.copy(DATA / im, d / f"{i}_{im}")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (d / "walden.txt").write_bytes((DATA / "text" / "walden_excerpt.txt").read_bytes()[:700])
    return sorted(d.iterdir())


def test_engine_writes_what_the_command_writes_without_it(tmp_path, cluster, monkeypatch):
    monkeypatch.setattr(streaming, "BLOCK_SIZE", 600)  # the text: a stream of 2 blocks
    here, there = folder(tmp_path, "here"), folder(tmp_path, "there")
    address = cluster.client.scheduler.address

    code, _, err = run("compress", "-v", *here)
    code_e, _, err_e = run("compress", "-v", "--engine", "dask", "--address", address, *there)
    assert code == code_e == 1  # the broken image
    assert err_e.replace("/there/", "/here/") == err  # one line for it, and the -v lines, in the same order
    assert [ln.startswith("neurocodec: ") for ln in err_e.splitlines()].count(True) == 1
    assert "broken.png: not a readable image" in err_e
    for a, b in zip(here, there):
        if a.name != "broken.png":
            assert a.with_name(a.name + ".ncd").read_bytes() == b.with_name(b.name + ".ncd").read_bytes()
    assert streaming.Reader(open(there[-1].with_name("walden.txt.ncd"), "rb")).stream

    blobs = sorted(tmp_path.glob("there/*.ncd"))
    code, _, err = run("decompress", "--output-dir", tmp_path / "back", "--engine", "dask", "--address", address, *blobs)
    assert code == 0, err
    assert (tmp_path / "back" / "walden.txt").read_bytes() == there[-1].read_bytes()
    assert run("decompress", "--output-dir", tmp_path / "back0", *sorted(tmp_path.glob("here/*.ncd")))[0] == 0
    for f in (tmp_path / "back").iterdir():
        mine = (tmp_path / "back0" / f.name)
        if f.suffix != ".png":
            assert f.read_bytes() == mine.read_bytes()
            continue
        # lossy: the latents are exact, but the float synthesis g_s sums in an order that
        # depends on the thread count (workers run one thread), so a pixel may differ by a level
        a, b = (np.asarray(Image.open(p), dtype=np.int16) for p in (f, mine))
        assert a.shape == b.shape and np.abs(a - b).max() <= 1 and np.mean(a != b) < 1e-3

    # the weights of each codec were read once per worker, not once per file
    loads = cluster.client.run(engine.worker_loads)
    assert len(loads) == 2 and all(v["weights_read"] <= 2 for v in loads.values())  # hyperprior, text


def test_engine_keeps_force_rm_and_output_dir(tmp_path, cluster):
    address = cluster.client.scheduler.address
    srcs = []
    for im in IMAGES:
        srcs.append(tmp_path / im)
        shutil.copy(DATA / im, srcs[-1])
    (tmp_path / "kodim05_crop.png.ncd").write_bytes(b"old")
    code, _, err = run("compress", "--engine", "dask", "--address", address, *srcs)
    assert code == 1 and err.strip().splitlines() == [f"neurocodec: {tmp_path}/kodim05_crop.png.ncd: already exists; use -f to overwrite"]
    assert (tmp_path / "kodim23_crop.png.ncd").exists() and (tmp_path / "kodim05_crop.png.ncd").read_bytes() == b"old"
    code, _, err = run("compress", "-f", "--rm", "--engine", "dask", "--address", address, *srcs)
    assert code == 0, err
    assert not any(s.exists() for s in srcs) and (tmp_path / "kodim05_crop.png.ncd").read_bytes()[:4] == b"\x89NCD"
    code, _, err = run("decompress", "--output-dir", tmp_path / "out", "--engine", "dask", "--address", address,
                       *sorted(tmp_path.glob("*.ncd")))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(IMAGES)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(im + ".ncd" for im in IMAGES)


def test_engine_options_and_an_unreachable_cluster(tmp_path):
    code, _, err = run("compress", "--workers", "2", DATA / IMAGES[0])
    assert code == 2 and "--engine" in err
    code, _, err = run("compress", "--engine", "dask", "--address", "nosuchprotocol://x:1", "-o", tmp_path / "x.ncd",
                       DATA / IMAGES[0])
    assert code == 1 and err.startswith("neurocodec: cannot reach the dask cluster at nosuchprotocol://x:1")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x.ncd").exists()


def test_bench_on_the_cluster(tmp_path, cluster):
    address = cluster.client.scheduler.address
    folder = tmp_path / "imgs"
    folder.mkdir()
    for im in IMAGES:
        shutil.copy(DATA / im, folder / im)
    args = ["bench", folder, "--codecs", "hyperprior,jpeg", "--qualities", "50", "--print-only"]
    code, out, err = run(*args, "--engine", "dask", "--address", address)
    assert code == 0, err
    here = run(*args)[1]
    sizes = lambda table: [ln.split()[:4] for ln in table.splitlines() if ln.startswith(("hyperprior ", "jpeg "))]  # noqa: E731
    assert sizes(out) == sizes(here) and "hyperprior" in out  # the same rows and bpp; times differ
    code, _, err = run(*args, "--engine", "dask", "--jobs", "2")
    assert code == 2 and "--jobs" in err


def _dies_on_b(data: bytes) -> bytes:
    if data == b"b":
        import os

        os._exit(1)  # as a worker killed for its memory dies
    return data.upper()


def test_a_file_that_kills_its_worker_is_reported_and_the_others_go_on(cluster, capsys):
    from neurocodec import cli

    done = []

    def prepare(path):
        return cli._Job(path.encode(), _dies_on_b, (), done.append)

    address = cluster.client.scheduler.address
    with pytest.raises(SystemExit):
        cli._run_each(("a", "b", "c", "d"), None, "", {"address": address, "workers": None}, prepare)
    assert done == [b"A", b"C", b"D"]
    assert capsys.readouterr().err == "neurocodec: b: the worker coding it died (out of memory?)\n"
