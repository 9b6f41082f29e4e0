"""Training of the byte-level LSTM behind the `text` codec.

The training text is read as parallel streams (`train.text_data.TextStreams`); each step takes
the next `seq` bytes of every stream and carries the LSTM state over from the previous step
(truncated backpropagation through time), so the model learns to use context far beyond `seq`,
as it must when it codes chunks of several thousand bytes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...train.spec import TrainSpec
from ...train.text_data import read_text_files
from .net import BOS, ByteLSTM


@torch.no_grad()
def evaluate(model: ByteLSTM, texts: list[bytes], device: str = "cpu", limit: int = 32768) -> float:
    """Bits per byte of the float model on the first `limit` bytes of each text, each read
    from its start after BOS, as the codec reads a chunk."""
    was_training = model.training
    model.eval()
    n = min(limit, *(len(t) for t in texts))
    x = torch.tensor(np.stack([np.frombuffer(t[:n], dtype=np.uint8) for t in texts]).astype(np.int64), device=device)
    inp = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], dim=1)
    logits, _ = model(inp)
    bits = F.cross_entropy(logits.reshape(-1, 256), x.reshape(-1), reduction="sum").item() / math.log(2)
    model.train(was_training)
    return bits / x.numel()


class TextSpec(TrainSpec):
    family = "text"
    data_kind = "text"
    default_data = "../shared/data/text/train.txt.xz"
    defaults = {"batch": 128, "lr": 2e-3}
    options = {"hidden": (384, "LSTM width (a new model only)"), "seq": (128, "bytes per backpropagation window"),
               "eval_data": (None, "text files to report bits per byte on at the end")}
    channels_last = False

    def build(self, arch: dict) -> ByteLSTM:
        return ByteLSTM(arch.get("hidden", self.opts["hidden"]), arch.get("embed", 128))

    def arch(self, model) -> dict:
        return {"hidden": model.hidden, "embed": model.embed_dim}

    def from_codec(self, config, weights):
        from .codec import float_net

        net = float_net(weights)
        return net.state_dict(), {"arch": self.arch(net)}

    def setup(self, model, source, device):
        self.source, self.carried = source, None

    def loss(self, model, chunk, frac):
        if self.source.wrapped:
            self.carried = None
        logits, state = model(chunk[:, :-1], self.carried)
        self.carried = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits.reshape(-1, 256), chunk[:, 1:].reshape(-1))
        return loss, {"bpb": loss.item() / math.log(2)}

    def lr(self, base, frac):
        return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))  # cosine to lr/20

    measures = ("eval_bpb_float",)

    def finish(self, model, info):
        if self.opts.get("eval_data"):
            info["eval_bpb_float"] = round(evaluate(model, read_text_files(self.opts["eval_data"]),
                                                    next(model.parameters()).device), 4)

    def export(self, model, info, name):
        from ...exact.lstm import export_weights
        from .codec import default_config

        return default_config(name, model), export_weights(model)
