"""`neurocodec train FAMILY` resumes from the shipped weights and exports a codec folder
that the registry loads and that codes real images."""

import json

import pytest
from click.testing import CliRunner
from conftest import DATA, psnr

import neurocodec
import torch
from neurocodec import container, registry
from neurocodec.cli import main


def test_resume_train_export(tmp_path, monkeypatch, photo):
    out, folder = tmp_path / "run", tmp_path / "codecs" / "hp-tuned"
    result = CliRunner().invoke(
        main,
        ["train", "hyperprior", "--data", str(DATA), "--minutes", "0.03", "--out", str(out),
         "--resume", "hyperprior", "--export", str(folder), "--name", "hp-tuned", "--batch", "2", "--crop", "64"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    shipped = registry.read_config("hyperprior")
    assert config["training"]["steps"] > shipped["training"]["steps"]  # it went on from there

    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        blob = neurocodec.compress(photo, codec="hp-tuned", quality=60)
        assert psnr(neurocodec.decompress(blob), photo) > 24  # a few steps keep it a working codec
    finally:
        registry.load_codec.cache_clear()


def test_text_resume_from_shipped_codec_train_export(tmp_path, monkeypatch):
    """`train text --resume text` starts from the shipped integer weights (turned back into an
    equivalent float network) and exports a codec that still compresses real text."""
    from neurocodec.families.text.codec import float_net
    from neurocodec.families.text.spec import evaluate

    shipped = neurocodec.load_codec("text")
    text = (DATA / "text" / "walden_excerpt.txt").read_bytes()
    start_bpb = evaluate(float_net(shipped._weights), [text])
    out, folder = tmp_path / "run", tmp_path / "codecs" / "text-tuned"
    result = CliRunner().invoke(
        main,
        ["train", "text", "--data", str(DATA / "text"), "--minutes", "0.02", "--out", str(out),
         "--resume", "text", "--export", str(folder), "--name", "text-tuned", "--batch", "4", "--seq", "64", "--lr", "1e-5"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["training"]["steps"] > registry.read_config("text")["training"]["steps"]

    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        tuned = neurocodec.load_codec("text-tuned")
        assert {"start_h", "start_c"} <= set(tuned._weights)  # the learned start state is exported
        assert tuned.warm and tuned.warm["bits"]["weights"].any()  # and what the mixers learned
        assert abs(evaluate(float_net(tuned._weights), [text]) - start_bpb) < 0.05  # a tiny lr: the same model
        blob = neurocodec.compress(text[:1500], codec="text-tuned")
        assert neurocodec.decompress(blob) == text[:1500]
    finally:
        registry.load_codec.cache_clear()


def test_a_resumed_run_drops_the_figures_of_the_run_before(tmp_path, monkeypatch):
    """A run's closing figures (text: bits per byte on the evaluation text) describe the weights
    at its end. A run resumed from it and stopped before its own end (here: its `finish`
    skipped) must not carry them into its checkpoint or export as if they were its own."""
    from neurocodec.families.text.spec import TextSpec
    from neurocodec.train.checkpoint import load_checkpoint

    base = ["train", "text", "--data", str(DATA / "text"), "--minutes", "0.02", "--batch", "4", "--seq", "32"]
    first = CliRunner().invoke(main, base + ["--out", str(tmp_path / "a"), "--eval-data", str(DATA / "text")])
    assert first.exit_code == 0, first.output
    assert "eval_bpb_float" in load_checkpoint(tmp_path / "a")[1]
    monkeypatch.setattr(TextSpec, "finish", lambda self, model, info: None)  # stopped before its end
    folder = tmp_path / "codecs" / "text-b"
    second = CliRunner().invoke(main, base + ["--out", str(tmp_path / "b"), "--resume", str(tmp_path / "a"),
                                              "--export", str(folder)])
    assert second.exit_code == 0, second.output
    assert "eval_bpb_float" not in load_checkpoint(tmp_path / "b")[1]
    assert "eval_bpb_float" not in json.loads((folder / registry.CONFIG).read_text())["training"]


def test_pixelcnn_resume_train_export(tmp_path, monkeypatch, photo):
    """`train pixelcnn --resume pixelcnn` goes on from the shipped weights and exports a codec
    that still codes real pixels losslessly, at about the same rate (a tiny learning rate)."""
    out, folder = tmp_path / "run", tmp_path / "codecs" / "pc-tuned"
    result = CliRunner().invoke(
        main,
        ["train", "pixelcnn", "--data", str(DATA), "--minutes", "0.02", "--out", str(out), "--resume", "pixelcnn",
         "--export", str(folder), "--name", "pc-tuned", "--batch", "2", "--crop", "32", "--lr", "1e-7"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["training"]["steps"] > registry.read_config("pixelcnn")["training"]["steps"]

    crop = photo[60:72, 80:96].copy()
    payload = lambda blob: sum(map(len, container.unpack(blob).chunks))  # noqa: E731 (headers differ by their digests)
    shipped = payload(neurocodec.compress(crop, codec="pixelcnn"))
    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        blob = neurocodec.compress(crop, codec="pc-tuned")
        assert (neurocodec.decompress(blob) == crop).all()
        assert abs(payload(blob) - shipped) <= 0.02 * shipped + 4
    finally:
        registry.load_codec.cache_clear()


@pytest.mark.parametrize("family", ["idf", "bitsback"])
def test_lossless_resume_train_export(tmp_path, monkeypatch, photo, family):
    """`train idf|bitsback --resume NAME` goes on from the shipped weights and exports a codec
    that still round-trips real pixels."""
    out, folder = tmp_path / "run", tmp_path / "codecs" / f"{family}-tuned"
    result = CliRunner().invoke(
        main,
        ["train", family, "--data", str(DATA), "--minutes", "0.02", "--out", str(out), "--resume", family,
         "--export", str(folder), "--name", f"{family}-tuned", "--batch", "2", "--crop", "32", "--lr", "1e-7"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["training"]["steps"] > registry.read_config(family)["training"]["steps"]

    crop = photo[60:80, 80:104].copy()
    monkeypatch.setenv("NEUROCODEC_CODECS", str(folder.parent))
    registry.load_codec.cache_clear()
    try:
        blob = neurocodec.compress(crop, codec=f"{family}-tuned")
        assert (neurocodec.decompress(blob) == crop).all()
    finally:
        registry.load_codec.cache_clear()


FAMILY_ARGS = {
    "hyperprior": ["--batch", "2", "--crop", "64", "--N", "16", "--M", "24"],
    "context": ["--batch", "2", "--crop", "64", "--N", "16", "--M", "24"],
    "pixelcnn": ["--batch", "2", "--crop", "16", "--features", "16", "--radius", "2"],
    "idf": ["--batch", "2", "--crop", "32"],
    "bitsback": ["--batch", "2", "--crop", "32"],
    "text": ["--batch", "4", "--seq", "32", "--hidden", "32"],
    "vq": ["--batch", "2", "--crop", "32", "--N", "16", "--dim", "8", "--codes", "16", "--stages", "2"],
    "perceptual": ["--batch", "2", "--crop", "64", "--N", "16", "--M", "24", "--backbone", ""],
    "vqlossless": ["--batch", "2", "--crop", "32", "--width", "8"],  # on the shipped vq codec
}


@pytest.mark.parametrize("family", sorted(registry.family_sources()))
def test_every_family_trains_from_scratch_checkpoints_and_resumes(tmp_path, family):
    """The same command a GPU run uses, for a few seconds on the CPU: it reports its
    throughput, writes checkpoint shards of at most 16 MiB, resumes model and optimizer, and
    exports a codec that the registry loads."""
    from neurocodec.train.checkpoint import STATE, load_checkpoint

    data = str(DATA / "text") if family == "text" else str(DATA)
    out, folder = tmp_path / "run", tmp_path / "codecs" / f"{family}-new"
    args = ["train", family, "--data", data, "--minutes", "0.04", "--out", str(out), *FAMILY_ARGS[family]]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "steps/s" in first.output and ("pixels/s" in first.output or "bytes/s" in first.output)
    shards = sorted(out.glob("checkpoint-*.safetensors"))
    assert shards and all(p.stat().st_size <= 16 * 2**20 for p in shards)
    state, info, optim = load_checkpoint(out)
    assert info["steps"] > 0 and optim and info["family"] == family
    again = CliRunner().invoke(main, args[:8] + ["--resume", str(out), "--export", str(folder), *args[8:]])
    assert again.exit_code == 0, again.output
    assert json.loads((out / STATE).read_text())["steps"] > info["steps"]
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["family"] == family and config["training"]["steps"] > info["steps"]
    codec = registry.codec_class(family)(config, __import__("safetensors.torch").torch.load_file(str(folder / registry.WEIGHTS)),
                                         bytes(32))
    x = (DATA / "text" / "walden_excerpt.txt").read_bytes()[:300] if family == "text" else \
        __import__("conftest").load("kodim05_crop.png")[:16, :16]
    out_x = codec.decode(codec.encode(x, quality=None if codec.lossless else 50))
    assert (out_x == x) if family == "text" else out_x.shape == x.shape


def test_a_resumed_run_keeps_its_batch_and_crop_unless_told(tmp_path):
    """Resuming without --batch/--crop goes on with the checkpoint's (a GPU run's batch 32 must
    not fall back to the CPU default); given, they win; another family's record is not used."""
    from neurocodec.train.checkpoint import load_checkpoint

    out = tmp_path / "run"
    base = ["train", "bitsback", "--data", str(DATA), "--minutes", "0.02", "--out", str(out)]
    assert CliRunner().invoke(main, base + ["--batch", "3", "--crop", "48"]).exit_code == 0
    again = CliRunner().invoke(main, base + ["--resume", str(out)])
    assert again.exit_code == 0, again.output
    info = load_checkpoint(out)[1]
    assert (info["batch"], info["crop"]) == (3, 48)
    assert CliRunner().invoke(main, base + ["--resume", str(out), "--crop", "32"]).exit_code == 0
    info = load_checkpoint(out)[1]
    assert (info["batch"], info["crop"]) == (3, 32)
    other = tmp_path / "idf"
    idf = ["train", "idf", "--data", str(DATA), "--minutes", "0.02", "--out", str(other), "--resume", str(out)]
    result = CliRunner().invoke(main, idf)  # bitsback's weights and record are not idf's
    assert result.exit_code == 1 and "cannot resume idf from" in result.output and "bitsback's" in result.output
    assert not isinstance(result.exception, KeyError)


def test_more_rate_levels_grow_a_resumed_model_above_its_top(tmp_path):
    """`--levels` above a resumed model's adds rate levels over its top: the trained gains stay,
    each new one starts extrapolated from the two highest, and the exported codec's -q 100 is
    the new top (with the lambdas the new levels were trained for)."""
    from neurocodec.families.hyperprior.net import LAMBDAS
    from neurocodec.train.checkpoint import load_checkpoint

    small, grown, folder = tmp_path / "small", tmp_path / "grown", tmp_path / "codecs" / "ctx-grown"
    args = ["train", "context", "--data", str(DATA), *FAMILY_ARGS["context"]]
    assert CliRunner().invoke(main, args + ["--minutes", "0.02", "--out", str(small)]).exit_code == 0
    before = load_checkpoint(small)[0]["log_gain"]
    assert before.shape[0] == 9
    result = CliRunner().invoke(main, args + ["--minutes", "0", "--resume", str(small), "--levels", "11",
                                              "--out", str(grown), "--export", str(folder)])
    assert result.exit_code == 0, result.output
    state, info, _ = load_checkpoint(grown)
    g = state["log_gain"]
    assert info["arch"]["levels"] == 11 and g.shape[0] == 11 and torch.equal(g[:9], before)
    assert torch.allclose(g[9:] - g[8:10], (before[8] - before[7]).expand(2, -1), atol=1e-6)
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["levels"] == 11 and config["lambdas"] == list(LAMBDAS[:11]) and config["lambdas"][-1] > 0.4
    codec = registry.codec_class("context")(config, __import__("safetensors.torch").torch.load_file(str(folder / registry.WEIGHTS)),
                                            bytes(32))
    assert codec.level(100) == 10
    x = __import__("conftest").load("kodim05_crop.png")[:32, :32]
    assert codec.decode(codec.encode(x, quality=100)).shape == x.shape
    # a resumed model keeps its levels unless told more; fewer, or more than there are lambdas, is refused
    again = CliRunner().invoke(main, args + ["--minutes", "0", "--resume", str(grown), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0 and load_checkpoint(tmp_path / "again")[1]["arch"]["levels"] == 11
    for told in ("10", "12"):
        bad = CliRunner().invoke(main, args + ["--minutes", "0", "--resume", str(grown), "--levels", told,
                                               "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 1 and "only added to a resumed model's 11" in bad.output, bad.output


def test_a_wider_idf_resumed_from_the_shipped_one_codes_what_it_did(tmp_path):
    """`train idf --hidden` wider than the resumed model's adds units that start without effect:
    the widened network's code length on a real image is the shipped network's, to the bit."""
    import math

    from neurocodec.families.idf.net import code_length
    from neurocodec.families.idf.spec import IDFSpec
    from neurocodec.train.checkpoint import load_checkpoint
    from neurocodec.train.loop import resume_state

    shipped = list(json.loads((registry.codec_folder("idf") / registry.CONFIG).read_text())["hidden"])
    wider = [w + 8 * (i + 1) for i, w in enumerate(shipped)]
    told = ",".join(map(str, wider))
    x = torch.from_numpy(__import__("conftest").load("kodim05_crop.png")[:64, :64].copy()).permute(2, 0, 1)[None].float()
    bits = []
    for hidden in (None, told):
        spec = IDFSpec(hidden=hidden)
        state, info, _ = resume_state(spec, "idf")
        model = spec.build(info["arch"])
        spec.load(model, state)
        assert list(model.hidden) == (shipped if hidden is None else wider)
        with torch.no_grad():
            bits.append(float(code_length(model, x, "laplace", math.log(1.3))))
    assert bits[0] == bits[1] and 1 < bits[0] < 8
    out = tmp_path / "wide"
    args = ["train", "idf", "--data", str(DATA), "--out", str(out), *FAMILY_ARGS["idf"], "--resume", "idf"]
    assert CliRunner().invoke(main, args + ["--minutes", "0", "--hidden", told]).exit_code == 0
    assert load_checkpoint(out)[1]["arch"]["hidden"] == wider
    narrower = ",".join(map(str, [shipped[0] - 1, *shipped[1:]]))
    for bad_widths in (narrower, ",".join(map(str, shipped[:3])), "wide"):
        bad = CliRunner().invoke(main, args + ["--minutes", "0", "--hidden", bad_widths])
        expected = f"4 comma-separated widths, each at least {','.join(map(str, shipped))}"
        assert bad.exit_code == 1 and expected in bad.output, bad.output


def test_a_wider_analysis_and_synthesis_start_where_the_narrow_ones_were(tmp_path):
    """`train context --width` wider than the resumed model's widens g_a and g_s: the widened
    network's rate and distortion on a real crop are the narrow one's, the exported codec names
    its width and codes, and a narrower width is refused in one line."""
    from neurocodec.families.context.spec import ContextSpec
    from neurocodec.train.checkpoint import load_checkpoint
    from neurocodec.train.loop import resume_state

    small, wide, folder = tmp_path / "small", tmp_path / "wide", tmp_path / "codecs" / "ctx-wide"
    args = ["train", "context", "--data", str(DATA), *FAMILY_ARGS["context"]]
    assert CliRunner().invoke(main, args + ["--minutes", "0.02", "--out", str(small)]).exit_code == 0
    result = CliRunner().invoke(main, args + ["--minutes", "0", "--resume", str(small), "--width", "24",
                                              "--out", str(wide), "--export", str(folder)])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(wide)[1]["arch"]["width"] == 24 and load_checkpoint(small)[1]["arch"]["width"] == 16
    x = torch.from_numpy(__import__("conftest").load("kodim05_crop.png")[:64, :64].copy()).permute(2, 0, 1)[None].float() / 255
    outs = []
    for source in (small, wide):
        spec = ContextSpec()
        state, info, _ = resume_state(spec, source)
        model = spec.build(info["arch"])
        spec.load(model, state)
        with torch.no_grad():
            out = model.eval()(x, torch.tensor([3.0]))
        outs.append((sum(-torch.log2(v).sum() for v in out["likelihoods"].values()), out["x_hat"]))
    assert outs[1][1].shape == outs[0][1].shape and model.width == 24 and model.g_s[0].weight.shape[1] == 24
    assert torch.allclose(outs[0][0], outs[1][0], rtol=1e-5) and torch.allclose(outs[0][1], outs[1][1], atol=1e-5)
    config = json.loads((folder / registry.CONFIG).read_text())
    assert config["width"] == 24 and config["N"] == 16
    codec = registry.codec_class("context")(config, __import__("safetensors.torch").torch.load_file(str(folder / registry.WEIGHTS)),
                                            bytes(32))
    crop = __import__("conftest").load("kodim05_crop.png")[:32, :32]
    assert codec.decode(codec.encode(crop, quality=50)).shape == crop.shape
    bad = CliRunner().invoke(main, args + ["--minutes", "0", "--resume", str(wide), "--width", "20", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "only widened from a resumed model's 24" in bad.output, bad.output


def test_a_step_whose_loss_spikes_is_skipped(tmp_path):
    """A batch whose loss is not finite or over SPIKE times the recent mean does not move the
    weights: the run logs it, records it, and goes on."""
    from neurocodec.families.idf.spec import IDFSpec
    from neurocodec.train.checkpoint import load_checkpoint
    from neurocodec.train.loop import train

    class Spiky(IDFSpec):
        calls = 0

        def loss(self, model, x, frac):
            loss, stats = super().loss(model, x, frac)
            Spiky.calls += 1
            return {4: loss * 1e5, 6: loss * float("nan")}.get(Spiky.calls, loss), stats

    lines = []
    info = train(Spiky(), DATA, tmp_path / "run", minutes=0.05, batch=2, crop=32, log=lines.append)
    assert Spiky.calls > 8 and info["runs"][-1]["skipped_steps"] == 2, lines
    assert info["steps"] == Spiky.calls - 2
    assert sum("skipped" in line for line in lines) == 2
    assert all(torch.isfinite(v).all() for v in load_checkpoint(tmp_path / "run")[0].values())


def test_a_hyperprior_resumed_from_the_context_codec_keeps_its_transforms(tmp_path):
    """`train hyperprior --resume context` takes the context model's transforms and hyperprior
    without its checkerboard layers: the exported hyperprior reconstructs what context does
    (the same latents, coded without the context pass)."""
    folder = tmp_path / "codecs" / "hp-from-context"
    result = CliRunner().invoke(main, ["train", "hyperprior", "--data", str(DATA), "--minutes", "0", "--resume", "context",
                                       "--out", str(tmp_path / "run"), "--export", str(folder)])
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    weights = __import__("safetensors.torch").torch.load_file(str(folder / registry.WEIGHTS))
    assert config["family"] == "hyperprior" and not any(k.startswith(("context.", "ep.")) for k in weights)
    hp = registry.codec_class("hyperprior")(config, weights, bytes(32))
    x = __import__("conftest").load("kodim05_crop.png")
    y_hp, y_ctx = hp.decode(hp.encode(x, quality=50)), neurocodec.decompress(neurocodec.compress(x, codec="context", quality=50))
    assert abs(psnr(x, y_hp) - psnr(x, y_ctx)) < 0.05 and psnr(x, y_hp) > 25


def test_an_export_without_training_records_no_run(tmp_path):
    """`--minutes 0 --export` (how a GPU checkpoint becomes a codec) adds no run of 0 minutes,
    and the CPU minutes are the sum of the runs' real minutes."""
    out, folder = tmp_path / "run", tmp_path / "codecs" / "idf-new"
    args = ["train", "idf", "--data", str(DATA), "--out", str(out), *FAMILY_ARGS["idf"]]
    assert CliRunner().invoke(main, args + ["--minutes", "0.03"]).exit_code == 0
    assert CliRunner().invoke(main, args + ["--minutes", "0", "--resume", str(out), "--export", str(folder)]).exit_code == 0
    training = json.loads((folder / registry.CONFIG).read_text())["training"]
    assert len(training["runs"]) == 1 and training["runs"][0]["steps"] > 0
    assert training["cpu_minutes"] == training["runs"][0]["minutes"] < 0.2


def test_distributed_training_with_two_processes(tmp_path):
    """torchrun with 2 CPU processes on the gloo backend: DistributedDataParallel trains one
    model, rank 0 writes the checkpoint and records the run as 2 processes."""
    import os
    import subprocess
    import sys

    from neurocodec.train.checkpoint import load_checkpoint

    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", NEUROCODEC_DDP_BACKEND="gloo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m",
           "neurocodec.cli", "train", "pixelcnn", "--data", str(DATA), "--minutes", "0.05", "--out", str(out),
           "--batch", "2", "--crop", "16", "--features", "16", "--radius", "2"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    _, info, _ = load_checkpoint(out)
    assert info["steps"] > 0 and info["runs"][-1]["hardware"].startswith("2 x")


def test_training_data_may_name_image_files_as_well_as_folders():
    """`--data` says "folder(s) or files": a file is taken as it is, a folder for its images."""
    from pathlib import Path

    from neurocodec.train.crops import load_images

    data = Path(__file__).parent / "data"
    folder = load_images(str(data))
    mixed = load_images(f"{data / 'kodim05_crop.png'},{data}")
    assert len(mixed) == len(folder) + 1 and mixed[0].shape[0] == 3


@pytest.mark.parametrize("family", ["context", "perceptual"])
def test_synthesis_only_keeps_what_sets_the_rate(tmp_path, family):
    """`--learn synthesis` trains g_s (and perceptual's discriminator) only: the analysis, the
    entropy models, the context layers and the gains, and so the coded latents and every
    file's size, stay as they were."""
    from neurocodec.train.checkpoint import load_checkpoint

    common = ["--data", str(DATA), *FAMILY_ARGS[family]]
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert CliRunner().invoke(main, ["train", family, "--minutes", "0.03", "--out", str(base), *common]).exit_code == 0
    folder = tmp_path / "codecs" / f"{family}-tuned"
    top = ["--top-level", "2.5", "--bottom-level", "-2"] if family == "perceptual" else []
    result = CliRunner().invoke(main, ["train", family, "--minutes", "0.03", "--out", str(tuned), "--resume", str(base),
                                       "--learn", "synthesis", "--lr", "1e-2", "--export", str(folder), *top, *common])
    assert result.exit_code == 0, result.output
    config = json.loads((folder / registry.CONFIG).read_text())
    codec = registry.codec_class(family)(config, __import__("safetensors.torch").torch.load_file(str(folder / registry.WEIGHTS)),
                                         bytes(32))
    # perceptual's -q spans the levels its synthesis learned
    assert (codec.level(1), codec.level(100)) == ((-2.0, 2.5) if family == "perceptual" else (0.0, 8.0))
    before, _, _ = load_checkpoint(base)
    after, _, _ = load_checkpoint(tuned)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("g_s.", "disc.") if family == "perceptual" else "g_s.") for k in changed), sorted(changed)[:5]
    assert any(k.startswith("g_s.") for k in changed)
    bad = CliRunner().invoke(main, ["train", family, "--minutes", "0.01", "--out", str(tmp_path / "x"),
                                    "--learn", "decoder", *common])
    assert bad.exit_code == 2 and "synthesis" in bad.output
    for top in (0, 9, "3", True):  # a level of the network, a real number
        with pytest.raises(neurocodec.NeurocodecError, match="top_level"):
            registry.check_config(type(codec), f"{family}-tuned", dict(config, top_level=top))
    for bottom in (-3.5, 0.5, "-1", True):  # at most three levels below the lowest trained
        with pytest.raises(neurocodec.NeurocodecError, match="bottom_level"):
            registry.check_config(type(codec), f"{family}-tuned", dict(config, bottom_level=bottom))


@pytest.mark.parametrize("family", [f for f in sorted(registry.family_sources()) if registry.train_spec(f).autocast])
def test_bf16_autocast_keeps_the_loss_of_float32(family, photo):
    """Families that train under bf16 autocast (on CUDA, and on CPUs with bf16 arithmetic)
    see the loss of float32 on a real crop (text: real lines) to within 1 %, with their
    shipped weights. (What it guards against is a loss that autocast breaks, by many percent.
    bf16 keeps 8 bits of mantissa: on single 128-px crops of kodim23 at random rate levels,
    context's shipped weights c74f072af7d9 measured +0.11 to +0.62 %.)"""
    from neurocodec.train.loop import resume_state

    spec = registry.train_spec(family)()
    state, info, _ = resume_state(spec, family)
    model = spec.build(info["arch"])
    spec.load(model, state)
    if spec.data_kind == "text":
        text = (DATA / "text" / "walden_excerpt.txt").read_bytes()[:8 * 129]
        x = torch.tensor(list(text)).reshape(8, 129)
    else:
        x = spec.prepare(torch.from_numpy(photo[:128, :128]).permute(2, 0, 1)[None].float() / 255)
    losses = []
    for enabled in (False, True):
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            spec.setup(model, type("Streams", (), {"wrapped": True})(), "cpu")  # text: no carried state
            losses.append(float(spec.loss(model, x, 0.5)[0]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-2)


def test_checkpoints_keep_the_weights_moving_average_and_resume_from_the_live_weights(tmp_path):
    """A checkpoint's model is the moving average of the weights (what export and evaluation
    use); the weights the optimizer stepped come along (`live.*`, at the model's precision)
    and a resumed run goes on from them, its average from the average. `--ema 0` keeps none."""
    from neurocodec.train.average import WeightAverage
    from neurocodec.train.checkpoint import LIVE, load_checkpoint

    lin = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    avg = WeightAverage(lin, 0.5)  # fresh: warms up, decay (1 + t) / (10 + t) = 2/11 first
    with torch.no_grad():
        lin.weight.fill_(12.0)
    avg.update()
    assert torch.allclose(avg.avg[0], torch.full((1, 2), 1 + 11 * 9 / 11))
    with avg.swapped():
        assert torch.equal(lin.weight.detach(), torch.full((1, 2), 10.0))
    assert torch.equal(lin.weight.detach(), torch.full((1, 2), 12.0))

    out = tmp_path / "run"
    args = ["train", "idf", "--data", str(DATA), "--out", str(out), *FAMILY_ARGS["idf"]]
    assert CliRunner().invoke(main, args + ["--minutes", "0.03", "--ema", "0.9"]).exit_code == 0
    state, info, optim = load_checkpoint(out)
    live = {k[len(LIVE):]: v for k, v in optim.items() if k.startswith(LIVE)}
    assert set(live) == set(state) and any(not torch.equal(live[k], state[k]) for k in state)
    assert info["runs"][-1]["ema"] == 0.9
    folder = tmp_path / "codecs" / "idf-avg"
    again = CliRunner().invoke(main, args + ["--minutes", "0", "--resume", str(out), "--export", str(folder)])
    assert again.exit_code == 0, again.output
    state2, _, optim2 = load_checkpoint(out)  # no steps: the same average and live weights
    assert all(torch.equal(state[k], state2[k]) and torch.equal(live[k], optim2[LIVE + k]) for k in state)
    plain = tmp_path / "plain"
    assert CliRunner().invoke(main, ["train", "idf", "--data", str(DATA), "--out", str(plain), *FAMILY_ARGS["idf"],
                                     "--minutes", "0.03", "--ema", "0"]).exit_code == 0
    assert not any(k.startswith(LIVE) for k in load_checkpoint(plain)[2])


def test_crops_larger_than_a_photo_reflect_it_as_often_as_needed():
    """A 158-px-high training photo and 512-px crops: one reflection adds at most 157 rows,
    so the padding repeats (it raised a RuntimeError); the photo stays in the corner."""
    from neurocodec.train.crops import RandomCrops

    for shape in [(3, 158, 512), (3, 1, 5), (3, 40, 700)]:
        im = torch.randint(0, 256, shape, dtype=torch.uint8)
        out = RandomCrops._pad(im, 512)
        assert out.shape[1] >= 512 and out.shape[2] >= 512 and out.dtype == torch.uint8
        assert (out[:, : shape[1], : shape[2]] == im).all()
    crops = RandomCrops([torch.randint(0, 256, (3, 158, 300), dtype=torch.uint8)], 512)
    assert crops.batch(2).shape == (2, 3, 512, 512)


def test_families_train_side_by_side_as_on_a_gpu_and_resume_from_weights_only(tmp_path):
    """scripts/gpu_together.sh, as a lent GPU runs it (here on the CPU): two families train at
    once from their shipped codecs, each log line names its family, and a checkpoint over
    RETURN_MIB comes back as its moving average alone (no optimizer state), from which a run
    resumes, and which exports."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from neurocodec.train.checkpoint import load_checkpoint

    root = Path(__file__).parents[1]
    env = dict(os.environ, DEVICE="cpu", PYTHON=sys.executable, OUT=str(tmp_path / "out"),
               CKPT_ROOT=str(tmp_path), RETURN_MIB="5")
    run = subprocess.run(["bash", str(root / "scripts" / "gpu_together.sh"), f"text 0.05 {DATA / 'text'} --batch 4 --seq 32",
                          f"idf 0.05 {DATA} --batch 2 --crop 32"], env=env, cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "[text] step" in run.stdout and "[idf] step" in run.stdout
    for family in ("text", "idf"):
        full_model, _, full_optim = load_checkpoint(tmp_path / f"ckpt-{family}")
        model, info, optim = load_checkpoint(tmp_path / "out" / family)
        size = sum(p.stat().st_size for p in (tmp_path / f"ckpt-{family}").iterdir())
        assert full_optim and bool(optim) == (size <= 5 * 2**20) and info["family"] == family
        assert all(torch.equal(model[k], full_model[k]) for k in full_model)
    text = tmp_path / "out" / "text"  # 9 MB in full: its weights alone came back
    _, info, optim = load_checkpoint(text)
    assert not optim
    folder = tmp_path / "codecs" / "text-gpu"
    again = CliRunner().invoke(main, ["train", "text", "--data", str(DATA / "text"), "--minutes", "0.02", "--batch", "4",
                                      "--seq", "32", "--resume", str(text), "--out", str(tmp_path / "again"),
                                      "--export", str(folder)])
    assert again.exit_code == 0, again.output
    assert json.loads((folder / registry.CONFIG).read_text())["training"]["steps"] > info["steps"]
    none = subprocess.run(["bash", str(root / "scripts" / "gpu_train.sh"), "nosuch", "0.05", str(DATA)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and "nothing to resume nosuch from" in none.stderr  # never a new model by mistake
