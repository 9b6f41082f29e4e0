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

# The learned start state trains on its own (`aux_loss`): windows of START_BYTES from random
# places, START_BATCH a step (about a tenth of a step's bytes), at START_LR. With the shipped
# network frozen, 300 such steps (K = 96, 64 windows, lr 0.05) took a chunk's first 256 bytes
# from 44 to 9 bits above reading on from the text before (Canoeing and Walden, float).
START_BYTES = 96
START_BATCH = 16
START_LR = 0.02


@torch.no_grad()
def evaluate(model: ByteLSTM, texts: list[bytes], device: str = "cpu", limit: int = 32768) -> float:
    """Bits per byte of the float model on the first `limit` bytes of each text, each read
    from its start after BOS and the learned start state, as the codec reads a chunk."""
    was_training = model.training
    model.eval()
    n = min(limit, *(len(t) for t in texts))
    x = torch.tensor(np.stack([np.frombuffer(t[:n], dtype=np.uint8) for t in texts]).astype(np.int64), device=device)
    inp = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], dim=1)
    logits, _ = model(inp, model.start_state(len(texts)))
    bits = F.cross_entropy(logits.reshape(-1, 256), x.reshape(-1), reduction="sum").item() / math.log(2)
    model.train(was_training)
    return bits / x.numel()


def start_loss(model: ByteLSTM, streams: torch.Tensor, n: int = START_BATCH, length: int = START_BYTES) -> torch.Tensor:
    """Mean code length (nats a byte) of `n` windows of `length` bytes at random places of the
    training `streams`, each read as a chunk: after BOS, from the learned start state."""
    length = min(length, streams.shape[1] - 1)
    rows = torch.randint(0, streams.shape[0], (n,))
    cols = torch.randint(0, streams.shape[1] - length, (n,))
    x = streams[rows[:, None], cols[:, None] + torch.arange(length)].to(model.start.device)
    inp = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], dim=1)
    logits, _ = model(inp, model.start_state(n))
    return F.cross_entropy(logits.reshape(-1, 256), x.reshape(-1))


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

    def load(self, model, state):
        # runs and codecs from before the learned start state: it starts at zero, as they did
        state = dict(state)
        state.setdefault("start", torch.zeros_like(model.start))
        model.load_state_dict(state)

    def setup(self, model, source, device):
        self.source, self.carried = source, None

    def aux_parameters(self, model):
        return [{"params": [model.start], "lr": START_LR}]

    def aux_loss(self, model):
        return start_loss(model, self.source.streams)

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
        """The integer network; and, where this run read training text, what the mixers learn
        over its first WARM_BYTES bytes (`codec.warm_start`), for every large file to start from."""
        from ...exact.lstm import export_weights
        from .codec import WARM_BYTES, default_config, warm_start

        config, weights = default_config(name, model), export_weights(model)
        source = getattr(self, "source", None)
        if source is not None:
            text = source.streams[0, :WARM_BYTES].numpy().astype(np.uint8).tobytes()
            weights |= warm_start(config, weights, text)
        return config, weights
