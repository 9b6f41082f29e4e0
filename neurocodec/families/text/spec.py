"""Training of the byte-level LSTM behind the `text` codec.

The training text is read as `B` parallel streams that start at evenly spaced offsets; each
step takes the next `T` bytes of every stream and carries the LSTM state over from the
previous step (truncated backpropagation through time), so the model learns to use context
far beyond `T`, as it must when it codes chunks of several thousand bytes. Runs for a
wall-clock budget with a cosine learning-rate decay over that budget, and writes a resumable
checkpoint every few minutes.
"""

from __future__ import annotations

import lzma
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .net import BOS, ByteLSTM
from ...train.checkpoint import add_run, has_checkpoint, load_checkpoint, load_codec_folder, progress, save_checkpoint


def read_text_files(path: str | Path) -> list[bytes]:
    """The bytes of a file, or of each file in a folder (sorted); `.xz` files are unpacked."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [lzma.decompress(p.read_bytes()) if p.suffix == ".xz" else p.read_bytes() for p in files]


@torch.no_grad()
def evaluate(model: ByteLSTM, texts: list[bytes], device: str = "cpu", limit: int = 32768) -> float:
    """Bits per byte of the float model on the first `limit` bytes of each text, each read
    from its start after BOS, as the codec reads a chunk."""
    model.eval()
    n = min(limit, *(len(t) for t in texts))
    x = torch.tensor(np.stack([np.frombuffer(t[:n], dtype=np.uint8) for t in texts]).astype(np.int64), device=device)
    inp = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], dim=1)
    logits, _ = model(inp)
    bits = F.cross_entropy(logits.reshape(-1, 256), x.reshape(-1), reduction="sum").item() / math.log(2)
    model.train()
    return bits / x.numel()


def train(
    data: str | Path,
    out: str | Path,
    minutes: float,
    init_state: dict[str, torch.Tensor] | None = None,
    init_info: dict | None = None,
    hidden: int = 384,
    embed: int = 128,
    batch: int = 128,
    seq: int = 128,
    lr: float = 2e-3,
    eval_data: str | Path | None = None,
    device: str = "cpu",
    seed: int = 0,
    log=print,
) -> dict:
    torch.manual_seed(seed)
    out = Path(out)
    if init_info:  # a resumed model keeps its shape
        hidden, embed = init_info["hidden"], init_info["embed"]
    model = ByteLSTM(hidden, embed).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    info = dict(init_info or {})
    info.setdefault("steps", 0)
    info.setdefault("bytes_seen", 0)
    info.setdefault("train_minutes", 0.0)
    info.update(hidden=hidden, embed=embed, batch=batch, seq=seq, data=str(data))
    add_run(info, device, minutes, lr)

    text = np.frombuffer(b"".join(read_text_files(data)), dtype=np.uint8)
    stream_len = len(text) // batch
    streams = torch.from_numpy(text[: stream_len * batch].reshape(batch, stream_len).astype(np.int64))
    pos = (info["bytes_seen"] // batch) % max(stream_len - seq - 1, 1)
    evals = read_text_files(eval_data) if eval_data else []

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    state = None
    start = last_save = last_eval = time.time()
    budget = minutes * 60
    step, loss_sum, loss_n = 0, 0.0, 0
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        warm = min(1.0, (step + 1) / 200) if init_state is None else 1.0
        for g in opt.param_groups:  # warm-up, then cosine from lr to lr/20 over the budget
            g["lr"] = lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        if pos + seq + 1 > stream_len:
            pos, state = 0, None
        chunk = streams[:, pos : pos + seq + 1].to(device)
        pos += seq
        logits, state = model(chunk[:, :-1], state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, 256), chunk[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss_sum += loss.item()
        loss_n += 1
        if step % 100 == 0:
            log(f"step {info['steps'] + step} {time.time() - start:.0f}s train {loss_sum / loss_n / math.log(2):.3f} bpb "
                f"lr {opt.param_groups[0]['lr']:.2e}")
            loss_sum, loss_n = 0.0, 0
        if evals and time.time() - last_eval > 600:
            log(f"eval {evaluate(model, evals, device):.4f} bpb (first 32 KB of each eval file, float model)")
            last_eval = time.time()
        if time.time() - last_save > 300:
            save_checkpoint(model.state_dict(), out, _progress(info, step, start, batch * seq))
            last_save = time.time()
    info = _progress(info, step, start, batch * seq)
    if evals:
        info["eval_bpb_float"] = round(evaluate(model, evals, device), 4)
        log(f"eval {info['eval_bpb_float']:.4f} bpb")
    save_checkpoint(model.state_dict(), out, info)
    return info


def _progress(info: dict, step: int, start: float, bytes_per_step: int) -> dict:
    return dict(progress(info, step, start), bytes_seen=info["bytes_seen"] + step * bytes_per_step)


def resume_state(spec: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(float state, training record) from a checkpoint folder, a codec folder or a codec name:
    training resumes from whatever was saved or shipped last."""
    from .codec import float_net

    if has_checkpoint(spec):
        return load_checkpoint(spec)
    config, weights = load_codec_folder(spec)
    net = float_net(weights)
    info = dict(config.get("training", {}), embed=net.embed_dim, hidden=net.hidden)
    return net.state_dict(), info


def export_codec(checkpoint: str | Path, folder: str | Path, name: str = "text") -> dict:
    """Turn a training checkpoint into a shipped codec folder (config.json + integer weights)."""
    from ... import registry
    from .codec import default_config, export_weights

    state, info = load_checkpoint(checkpoint)
    net = ByteLSTM(info["hidden"], info["embed"])
    net.load_state_dict(state)
    config = default_config(name, net)
    config["training"] = info
    registry.write_codec_folder(Path(folder), config, export_weights(net))
    return config
