"""The recurrent cells' updates on gates computed outside: nn.LSTMCell's and nn.GRUCell's maths.

A fused step computes a cell's gates with its own matmuls (one for everything that reads a
state, input gates for all steps at once) and hands them to the update here, so every recurrent
model (RAM's LSTM core, the Bahdanau and Luong decoders) runs one copy of the cell's maths.

    LSTM (Hochreiter & Schmidhuber 1997; nn.LSTMCell's gate order i, f, g, o):
        c' = sigma(f) c + sigma(i) tanh(g)          `lstm_update`
        h' = sigma(o) tanh(c')
    GRU (Cho et al. 2014; nn.GRUCell's gate order r, z, n):
        r = sigma(x_r + h_r), z = sigma(x_z + h_z)  `gru_update`
        n = tanh(x_n + r h_n),  h' = (1 - z) n + z h

Everything here imports torch only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lstm_update(gates: Tensor, cell: Tensor | None) -> tuple[Tensor, Tensor]:
    """nn.LSTMCell's update on gates computed outside.

    c' = sigma(f) c + sigma(i) tanh(g), h' = sigma(o) tanh(c').

    Args:
        gates: (b, 4H) W_i x + W_h h + biases, in the order i, f, g, o.
        cell: (b, H) c, or None for c = 0 (a first step: the forget term is skipped, not multiplied by 0).
    Returns:
        (h', c'), each (b, H).
    """
    i, f, g, o = gates.chunk(4, dim=1)  # (b, H) each
    written = torch.sigmoid(i) * torch.tanh(g)  # (b, H)
    cell = written if cell is None else torch.sigmoid(f) * cell + written  # (b, H)
    return torch.sigmoid(o) * torch.tanh(cell), cell


def gru_update(input_gates: Tensor, hidden_gates: Tensor, h: Tensor) -> Tensor:
    """nn.GRUCell's update on gates computed outside.

    r = sigma(x_r + h_r), z = sigma(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h.

    Args:
        input_gates: (b, 3H) W_i x + b_i, in the order r, z, n.
        hidden_gates: (b, 3H) W_h h + b_h, same order.
        h: (b, H) the previous state.
    Returns:
        (b, H) h'.
    """
    size = h.shape[1]
    # split, not slices: its backward is one cat, a slice's a zero-filled copy each
    x_rz, x_n = input_gates.split([2 * size, size], dim=1)  # (b, 2H), (b, H)
    h_rz, h_n = hidden_gates.split([2 * size, size], dim=1)  # (b, 2H), (b, H)
    r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)  # (b, H) each
    n = torch.tanh(x_n + r * h_n)  # (b, H)
    return n + z * (h - n)  # (b, H)
