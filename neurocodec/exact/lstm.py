"""An LSTM language model in exact integer arithmetic: the text codec's network.

A byte-level model (embedding -> one LSTM layer -> linear -> 256 logits) is exported to
integers: weights with `WEIGHT_BITS` and activations with `ACT_BITS` fractional bits (the
convention of all of `neurocodec.exact`), so every dot product is a sum of integers below
2**53 and exact in any order. The embedding and input projection fold into one table row per
byte value; sigmoid, tanh and exp are stored tables indexed by quantized arguments; the
next-byte distribution is a vector of integer weights, which constriction normalizes the same
way everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from . import ACT_BITS, WEIGHT_BITS

ACC_BITS = WEIGHT_BITS + ACT_BITS  # fractional bits of a dot product
GATE_BITS = 8  # a gate's pre-activation is looked up on a 2**-8 grid ...
GATE_RANGE = 12  # ... over [-12, 12]
CELL_LIMIT = 64.0  # |c| is clamped here
LOGIT_BITS = 6  # logits are rounded to 1/64 nat ...
LOGIT_RANGE = 24  # ... and kept within 24 nats of the largest
PROB_BITS = 32  # exp table: round(2**32 * exp(-k / 64)), at least 1


def export_weights(net) -> dict[str, torch.Tensor]:
    """The integer tensors and lookup tables the codec runs on (int32; the exp table int64)."""
    with torch.no_grad():
        lstm = net.lstm
        table_in = net.embed.weight.double() @ lstm.weight_ih_l0.double().T + (lstm.bias_ih_l0 + lstm.bias_hh_l0).double()
        i, f, g, o = torch.arange(4 * net.hidden).view(4, -1)  # torch's gate order ...
        order = torch.cat([i, f, o, g])  # ... stored as i, f, o, g: the sigmoid gates together
        grid = torch.arange(-GATE_RANGE * 2**GATE_BITS, GATE_RANGE * 2**GATE_BITS + 1, dtype=torch.float64) / 2**GATE_BITS
        k = torch.arange(0, LOGIT_RANGE * 2**LOGIT_BITS + 1, dtype=torch.float64)
        q = lambda t, bits: torch.round(t * 2.0**bits).to(torch.int32)  # noqa: E731
        return {
            "table_in": q(table_in[:, order], WEIGHT_BITS),  # times 2**ACT_BITS at load: units 2**-ACC_BITS
            "w_hh": q(lstm.weight_hh_l0.double()[order], WEIGHT_BITS),
            "w_out": q(net.out.weight.double(), WEIGHT_BITS),
            "b_out": q(net.out.bias.double(), WEIGHT_BITS),
            "sigmoid": q(torch.sigmoid(grid), ACT_BITS),
            "tanh": q(torch.tanh(grid), ACT_BITS),
            "exp": torch.clamp(torch.round(torch.exp(-k / 2**LOGIT_BITS) * 2.0**PROB_BITS), min=1).to(torch.int64),
            # the learned state a chunk starts from, on the activations' grid
            "start_h": q(torch.tanh(net.start[0].double()), ACT_BITS),
            "start_c": q(net.start[1].double().clamp(-CELL_LIMIT, CELL_LIMIT), ACT_BITS),
        }


def _lookup(table: torch.Tensor, x: torch.Tensor, shift: int) -> torch.Tensor:
    """table[round(x / 2**shift)], the index clamped to the table's range."""
    half = (table.numel() - 1) // 2
    return table[torch.floor(x * 2.0**-shift + (half + 0.5)).clamp_(0, 2 * half).long()]


def _cell_loop(pre, c, sigmoid, tanh, gate_scale, cell_scale, act_scale, limit, h_out, c_out):  # pragma: no cover (numba)
    """`IntegerLSTM.cell` after its matrix product, in one pass (compiled by numba): the same
    operations on the same float64 integers as the torch version (`_lookup`), so the same bits."""
    hs, ht = (sigmoid.shape[0] - 1) // 2, (tanh.shape[0] - 1) // 2
    n, width = c.shape
    for r in range(n):
        for j in range(width):
            i = sigmoid[int(min(max(np.floor(pre[r, j] * gate_scale + (hs + 0.5)), 0.0), 2.0 * hs))]
            f = sigmoid[int(min(max(np.floor(pre[r, width + j] * gate_scale + (hs + 0.5)), 0.0), 2.0 * hs))]
            o = sigmoid[int(min(max(np.floor(pre[r, 2 * width + j] * gate_scale + (hs + 0.5)), 0.0), 2.0 * hs))]
            g = tanh[int(min(max(np.floor(pre[r, 3 * width + j] * gate_scale + (ht + 0.5)), 0.0), 2.0 * ht))]
            cell = min(max(np.floor((f * c[r, j] + i * g) * act_scale + 0.5), -limit), limit)
            c_out[r, j] = cell
            h_out[r, j] = np.floor(o * tanh[int(min(max(np.floor(cell * cell_scale + (ht + 0.5)), 0.0), 2.0 * ht))]
                                   * act_scale + 0.5)


_CELL = None


def _compiled_cell():
    global _CELL
    if _CELL is None:
        import numba

        _CELL = numba.njit(cache=True, nogil=True)(_cell_loop)
    return _CELL


class IntegerLSTM:
    """Exact next-byte weights, one step at a time for a batch of streams."""

    def __init__(self, weights: dict[str, torch.Tensor], device: str | torch.device = "cpu", bos: int = 0):
        f64 = lambda name, shift=0: weights[name].to(torch.float64).mul(2.0**shift).to(device)  # noqa: E731
        self.table_in = f64("table_in", ACT_BITS)
        self.w_hh_t = f64("w_hh").T.contiguous()
        self.w_out_t = f64("w_out").T.contiguous()
        self.b_out = f64("b_out", ACT_BITS)
        self.sigmoid, self.tanh, self.exp = f64("sigmoid"), f64("tanh"), f64("exp")
        self.hidden = self.w_hh_t.shape[0]
        self.device, self.bos = device, bos  # bos: the byte a fresh stream is taken to follow
        # the learned start state (weights exported since it was added), else None
        self.start = (f64("start_h"), f64("start_c")) if "start_h" in weights else None
        for name, w in (("w_hh", self.w_hh_t), ("w_out", self.w_out_t)):
            if w.abs().sum(0).max() * 2**ACT_BITS >= 2**52:  # the worst case of one dot product
                raise ValueError(f"{name} is too large for exact float64 accumulation")

    def initial_state(self, n: int, learned: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(previous bytes, h, c) of `n` fresh streams: h and c zero, or with `learned` the
        learned start state."""
        prev = torch.full((n,), self.bos, dtype=torch.long, device=self.device)
        if learned:
            h, c = self.start
            return prev, h.expand(n, -1).clone(), c.expand(n, -1).clone()
        zeros = torch.zeros(n, self.hidden, dtype=torch.float64, device=self.device)
        return prev, zeros, zeros.clone()

    def step(self, prev: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """Integer weights (n, 256) of the next byte after `prev`, and the new (h, c)."""
        h, c = self.cell(prev, h, c)
        return self.next_byte(h @ self.w_out_t + self.b_out, ACC_BITS), h, c

    def cell(self, prev: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The new (h, c) after `prev`."""
        pre = self.table_in[prev] + h @ self.w_hh_t
        if pre.device.type == "cpu":  # one compiled pass instead of about twenty tensor operations
            h, c_new = torch.empty_like(c), torch.empty_like(c)
            _compiled_cell()(pre.numpy(), c.numpy(), self.sigmoid.numpy(), self.tanh.numpy(), 2.0 ** (GATE_BITS - ACC_BITS),
                             2.0 ** (GATE_BITS - ACT_BITS), 2.0**-ACT_BITS, CELL_LIMIT * 2**ACT_BITS, h.numpy(), c_new.numpy())
            return h, c_new
        return self._cell_torch(pre, c)

    def _cell_torch(self, pre: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.hidden
        i, f, o = _lookup(self.sigmoid, pre[:, : 3 * n], ACC_BITS - GATE_BITS).split(n, dim=1)
        g = _lookup(self.tanh, pre[:, 3 * n :], ACC_BITS - GATE_BITS)
        limit = CELL_LIMIT * 2**ACT_BITS
        c = torch.floor(torch.addcmul(f * c, i, g).mul_(2.0**-ACT_BITS).add_(0.5)).clamp_(-limit, limit)
        h = torch.floor(o * _lookup(self.tanh, c, ACT_BITS - GATE_BITS) * 2.0**-ACT_BITS + 0.5)
        return h, c

    def next_byte(self, logits: torch.Tensor, bits: int) -> torch.Tensor:
        """Integer weights of the next byte from exact logits with `bits` fractional bits."""
        logits = torch.floor(logits * 2.0 ** -(bits - LOGIT_BITS) + 0.5)
        k = torch.clamp(logits.amax(dim=1, keepdim=True) - logits, max=self.exp.numel() - 1).long()
        return self.exp[k]


class OnlineOutput:
    """The output layer of an `IntegerLSTM`, learning the document as it is coded (dynamic
    evaluation, Krause et al. 2018): after each step, one step of gradient descent on the code
    length of the bytes just coded, -log p(byte), summed over the streams, at the rate
    2**-`rate_log2` per nat. A model trained on other books thus learns this one's words, and
    both ends learn the same from the same bytes.

    Exact. p is rounded to 2**-P_BITS, so the gradient p - onehot is an integer vector and its
    product with h (integers) an integer matrix whose sum over the streams is exact in any
    order (below 2**38 for a thousand streams). Weights are kept with FINE more fractional bits
    than the network's, so that small steps are not rounded away, and clamped to +-LIMIT, so
    that a logit stays an exact float64 sum. Each step is rounded to that grid."""

    FINE = 8
    P_BITS = 16
    LIMIT = 64.0  # |weight| and |bias| in natural units

    def __init__(self, net: IntegerLSTM, rate_log2: int):
        if net.hidden * self.LIMIT * 2.0 ** (WEIGHT_BITS + self.FINE + ACT_BITS) >= 2**52:
            raise ValueError("the output layer is too wide for exact online learning")
        self.net, self.rate_log2 = net, int(rate_log2)
        self.w = net.w_out_t * 2.0**self.FINE  # units 2**-(WEIGHT_BITS + FINE)
        self.b = net.b_out * 2.0**self.FINE  # units 2**-(ACC_BITS + FINE)
        self.bits = ACC_BITS + self.FINE
        self._half = torch.full_like(self.w, 0.5)

    def step(self, prev: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """As `IntegerLSTM.step`, with this layer's weights."""
        h, c = self.net.cell(prev, h, c)
        return self.net.next_byte(h @ self.w + self.b, self.bits), h, c

    def learn(self, h: torch.Tensor, weights: torch.Tensor, symbols: torch.Tensor) -> None:
        """One step on the bytes `symbols` (n,) just coded from `weights` (n, 256, `step`'s)
        and the states `h` (n, hidden) that predicted them."""
        total = weights.sum(dim=1, keepdim=True)  # integers below 2**41: exact
        grad = torch.floor(weights * 2.0**self.P_BITS / total + 0.5)  # p, one correctly rounded division
        grad[torch.arange(len(symbols), device=grad.device), symbols] -= 2.0**self.P_BITS
        # dw = 2**-rate * h^T grad, from units 2**-(ACT_BITS + P_BITS) to the weights'
        shift = WEIGHT_BITS + self.FINE - ACT_BITS - self.P_BITS - self.rate_log2
        w_limit, b_limit = self.LIMIT * 2.0 ** (WEIGHT_BITS + self.FINE), self.LIMIT * 2.0**self.bits
        step = torch.addmm(self._half, h.T, grad, alpha=2.0**shift)  # exact: an integer times 2**shift, + 1/2
        self.w.sub_(step.floor_()).clamp_(-w_limit, w_limit)
        self.b.sub_(torch.floor(grad.sum(0) * 2.0 ** (self.bits - self.P_BITS - self.rate_log2) + 0.5)).clamp_(-b_limit, b_limit)


