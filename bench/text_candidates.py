"""The architecture measurement behind the `text` codec, on this machine's CPU.

For each candidate: training throughput (bytes per second of forward + backward + Adam, the
budget a CPU-trained model lives on) and, for the LSTM, decode throughput of the exact integer
step the codec runs, batched over chunks in lockstep (weights are random here: only time is
measured). Writes `bench/results/text_candidates.md`.

    python bench/text_candidates.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from neurocodec.bench.images import _markdown, machine_line
from neurocodec.exact.lstm import IntegerLSTM, export_weights
from neurocodec.families.text.net import ByteLSTM


def train_rate(model: nn.Module, forward, batch: int, seq: int, steps: int = 3) -> float:
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randint(0, 256, (batch, seq + 1))
    for i in range(steps + 1):
        if i == 1:
            t = time.perf_counter()
        loss = nn.functional.cross_entropy(forward(x[:, :-1]).reshape(-1, 256), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * seq * steps / (time.perf_counter() - t)


class TinyTransformer(nn.Module):
    def __init__(self, d: int, layers: int, seq: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, d // 64, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.emb, self.pos, self.out = nn.Embedding(256, d), nn.Parameter(torch.zeros(seq, d)), nn.Linear(d, 256)
        self.mask = nn.Transformer.generate_square_subsequent_mask(seq)

    def forward(self, x):
        return self.out(self.enc(self.emb(x) + self.pos, mask=self.mask, is_causal=True))


def decode_rate(hidden: int, batch: int, steps: int = 50) -> float:
    net = IntegerLSTM(export_weights(ByteLSTM(hidden)))
    prev, h, c = net.initial_state(batch)
    for i in range(steps + 1):
        if i == 1:
            t = time.perf_counter()
        w, h, c = net.step(prev, h, c)
        prev = torch.multinomial(w / w.sum(1, keepdim=True), 1)[:, 0]
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    rows = []
    for hidden in (256, 384, 512):
        model = ByteLSTM(hidden)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        rate = train_rate(model, lambda x: model(x)[0], 128, 128)
        dec = [decode_rate(hidden, b) for b in (16, 64, 256)]
        rows.append([f"LSTM 1x{hidden}", f"{params:.2f}", f"{rate / 1e3:.1f}", *(f"{d / 1e3:.1f}" for d in dec)])
        print(rows[-1], flush=True)
    for d, layers in ((192, 4), (256, 4)):
        model = TinyTransformer(d, layers, 256)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        rate = train_rate(model, model, 32, 256)
        rows.append([f"transformer {layers}x{d}", f"{params:.2f}", f"{rate / 1e3:.1f}", "-", "-", "-"])
        print(rows[-1], flush=True)
    header = ["model", "M params", "train kB/s", "decode kB/s, 16 chunks", "64 chunks", "256 chunks"]
    out = Path("bench/results/text_candidates.md")
    out.write_text(f"# text codec: candidate architectures\n\n{machine_line()}\n\n{_markdown(header, rows)}\n\n"
                   "Decode: the codec's exact integer LSTM step (float64 holding integers) without the range coder; "
                   "transformers were not given an integer decoder, see MODEL_CARD.md.\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
