"""The float byte-level LSTM that the `text` codec is trained as.

bytes -> embedding -> one LSTM layer -> linear -> 256 logits for the next byte. Coding runs
an integer copy of this network (neurocodec.families.text.codec), never this one.
"""

from __future__ import annotations

import torch
from torch import nn

BOS = 0  # the byte a chunk is assumed to follow (NUL is rare in text)


class ByteLSTM(nn.Module):
    def __init__(self, hidden: int = 384, embed: int = 128):
        super().__init__()
        self.hidden, self.embed_dim = hidden, embed
        self.embed = nn.Embedding(256, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 256)
        # The state a chunk starts from (rows: h before its tanh, c), learned: the codec cuts
        # a text into chunks that start mid-text, where a zero state costs about 44 bits a
        # chunk more than the state of the text before (the shipped network on two books).
        self.start = nn.Parameter(torch.zeros(2, hidden))

    def forward(self, x: torch.Tensor, state=None):
        """Logits (B, T, 256) for the byte after each of `x` (B, T), and the carried state."""
        h, state = self.lstm(self.embed(x), state)
        return self.out(h), state

    def start_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned (h, c) a chunk starts from, for `n` streams."""
        h, c = torch.tanh(self.start[0]), self.start[1]
        return h.expand(1, n, -1).contiguous(), c.expand(1, n, -1).contiguous()
