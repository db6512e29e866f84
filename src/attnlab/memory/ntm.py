"""Neural Turing Machine (Graves, Wayne, Danihelka 2014, arXiv:1410.5401).

A controller (LSTM or feedforward) reads the input x_t and the previous read vectors; one linear
layer turns its output into every head's parameters; write heads change the memory, read heads
then read it; the output is a linear map of the controller output and the new reads.

    k, beta = key, softplus(.)                 key and key strength       (eq. 5-6)
    g       = sigmoid(.)                       interpolation gate         (eq. 7)
    s       = softmax over 2s+1 shifts         shift weighting            (eq. 8)
    gamma   = 1 + softplus(.)                  sharpening                 (eq. 9)
    w       = sharpen(shift(interpolate(content_weights(k, M, beta), w_{t-1}, g), s), gamma)
    e, a    = sigmoid(.), a                    erase and add vectors      (eq. 3-4)
    M_t     = M_{t-1} o prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T
    r       = w^T M_t                          the read vector            (eq. 2)
    y_t     = W_y [controller output, r_1..r_R]

Several write heads all address M_{t-1}; their erasures multiply and their adds sum, which the
paper notes is order free (sec. 3.2). Memory starts at zero, every head's weighting one-hot on
slot 0 and the reads at zero: the cosine score smooths the norms, so an empty memory gives a
uniform content weighting, never 0/0. The addressing steps live in `addressing.py`; content
addressing is `core.attend` with score "cosine". While traced, every step records kind "read"
with weights (b, num_reads, 1, n) and kind "write" with weights (b, num_writes, 1, n).
No parameter depends on the number of slots or the sequence length.

Paths (`core.fast`): "eager" runs `step` once per time step and autograd differentiates it (and
it runs whenever a trace is attached). "fast" runs the same equations through `memory.fused` with
the memory part of `ntm_steps`: the controller's input projection of every x_t in one matmul
before the time loop and the output layer of every step in one matmul after it, and one autograd
node for the whole sequence whose backward walks the steps in reverse with the derivatives written
out. "compiled" runs those step functions, forward and backward, through `core.fast.compiled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core import Traced
from attnlab.core.fast import FastPath, under_vmap
from attnlab.memory import fused, ntm_steps
from attnlab.memory.addressing import content_weights, interpolate, sharpen, shift

CONTROLLERS = ("lstm", "feedforward")


@dataclass(frozen=True)
class NTMConfig:
    """Sizes of a Neural Turing Machine (the input and output widths are the task's: NTM's arguments)."""

    controller: str = "lstm"  # "lstm" or "feedforward" (one tanh layer)
    controller_size: int = 100  # hidden units of the controller
    memory_size: int = 128  # n, memory slots
    word_size: int = 20  # w, the size of a slot, a key and a read vector
    num_reads: int = 1  # read heads
    num_writes: int = 1  # write heads
    shift_range: int = 1  # s: shifts -s..s are allowed

    def __post_init__(self) -> None:
        for name in ("controller_size", "memory_size", "word_size", "num_reads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_writes < 0:
            raise ValueError(f"num_writes must be >= 0, got {self.num_writes}")
        if self.shift_range < 0:
            raise ValueError(f"shift_range must be >= 0, got {self.shift_range}")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {CONTROLLERS}, got {self.controller!r}")


class NTMState(NamedTuple):
    """The whole recurrent state; the heads' weightings are part of it."""

    memory: Tensor  # (b, n, w)
    read_weights: Tensor  # (b, num_reads, n)
    write_weights: Tensor  # (b, num_writes, n)
    reads: Tensor  # (b, num_reads, w) last read vectors
    controller: tuple[Tensor, ...]  # (h, c) each (b, controller_size) for lstm; () for feedforward


class NTM(FastPath, Traced, nn.Module):
    """Neural Turing Machine over a sequence of feature vectors, one output per step.

    Args:
        config: the machine's sizes (NTMConfig).
        input_size: features of x_t.
        output_size: outputs per step (logits; the task applies the sigmoid).
    """

    Config = NTMConfig
    fast_step_name = "fused NTM step"

    def __init__(self, config: NTMConfig, input_size: int, output_size: int):
        super().__init__()
        for name, size in (("input_size", input_size), ("output_size", output_size)):
            if size < 1:
                raise ValueError(f"{name} must be >= 1, got {size}")
        self.config = config
        self.input_size, self.output_size = input_size, output_size
        cfg = config
        w, span = cfg.word_size, 2 * cfg.shift_range + 1
        self.read_size = w + 3 + span  # k, beta, g, s, gamma
        self.write_size = self.read_size + 2 * w  # and e, a
        read_in = input_size + cfg.num_reads * w
        if cfg.controller == "lstm":
            self.controller: nn.Module = nn.LSTMCell(read_in, cfg.controller_size)
        else:
            self.controller = nn.Linear(read_in, cfg.controller_size)
        self.heads = nn.Linear(cfg.controller_size, cfg.num_reads * self.read_size + cfg.num_writes * self.write_size)
        self.out = nn.Linear(cfg.controller_size + cfg.num_reads * w, output_size)

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> NTMState:
        """Zero memory and reads, every head's weighting one-hot on slot 0, zero controller state."""
        cfg = self.config
        param = self.out.weight
        device = param.device if device is None else device
        dtype = param.dtype if dtype is None else dtype
        b, n, w = batch_size, cfg.memory_size, cfg.word_size
        first = torch.zeros(n, device=device, dtype=dtype)  # (n,)
        first[0] = 1.0
        controller: tuple[Tensor, ...] = ()
        if cfg.controller == "lstm":
            h, c = (torch.zeros(b, cfg.controller_size, device=device, dtype=dtype) for _ in range(2))
            controller = (h, c)  # (b, controller_size) each
        return NTMState(
            memory=torch.zeros(b, n, w, device=device, dtype=dtype),
            read_weights=first.expand(b, cfg.num_reads, n).clone(),  # (b, num_reads, n)
            write_weights=first.expand(b, cfg.num_writes, n).clone(),  # (b, num_writes, n)
            reads=torch.zeros(b, cfg.num_reads, w, device=device, dtype=dtype),
            controller=controller,
        )

    def _address(self, params: Tensor, memory: Tensor, previous: Tensor) -> Tensor:
        """Head weightings (eq. 5-9) from raw head parameters.

        Args:
            params: (b, r, read_size) the heads' k, beta, g, s, gamma before their nonlinearities.
            memory: (b, n, w) the memory to address.
            previous: (b, r, n) the heads' weightings of the previous step.
        Returns:
            (b, r, n) weightings; each row sums to one.
        """
        sizes = [self.config.word_size, 1, 1, 2 * self.config.shift_range + 1, 1]
        key, beta, gate, shifts, gamma = params.split(sizes, -1)  # (b, r, w), (b, r, 1) x 2, (b, r, 2s+1), (b, r, 1)
        beta = F.softplus(beta[..., 0])  # (b, r)
        gate = torch.sigmoid(gate[..., 0])  # (b, r)
        gamma = 1 + F.softplus(gamma[..., 0])  # (b, r)
        shifts = torch.softmax(shifts, -1)  # (b, r, 2s+1): a softmax over shifts, not slots
        weights = interpolate(content_weights(key, memory, beta), previous, gate)  # (b, r, n)
        return sharpen(shift(weights, shifts), gamma)  # (b, r, n)

    def step(self, x: Tensor, state: NTMState) -> tuple[Tensor, NTMState]:
        """One time step.

        Args:
            x: (b, input_size) the input x_t.
            state: the previous NTMState.
        Returns:
            y (b, output_size) logits, and the new NTMState.
        """
        cfg = self.config
        b, w = x.shape[0], cfg.word_size
        inputs = torch.cat([x, state.reads.flatten(1)], -1)  # (b, input_size + num_reads * w)
        controller: tuple[Tensor, ...] = ()
        if cfg.controller == "lstm":
            h, c = self.controller(inputs, state.controller)  # (b, controller_size) each
            controller = (h, c)
        else:
            h = torch.tanh(self.controller(inputs))  # (b, controller_size)
        params = self.heads(h)  # (b, num_reads * read_size + num_writes * write_size)
        read_params, write_params = params.split([cfg.num_reads * self.read_size, cfg.num_writes * self.write_size], -1)
        read_params = read_params.view(b, cfg.num_reads, self.read_size)  # (b, num_reads, read_size)
        write_params = write_params.view(b, cfg.num_writes, self.write_size)  # (b, num_writes, write_size)

        memory, write_weights = state.memory, state.write_weights
        if cfg.num_writes:
            address, erase, add = write_params.split([self.read_size, w, w], -1)  # (b, num_writes, .)
            write_weights = self._address(address, memory, state.write_weights)  # (b, num_writes, n)
            keep = (1 - write_weights[..., :, None] * torch.sigmoid(erase)[..., None, :]).prod(1)  # (b, n, w)
            memory = memory * keep + write_weights.transpose(1, 2) @ add  # (b, n, w)
        read_weights = self._address(read_params, memory, state.read_weights)  # (b, num_reads, n)
        reads = read_weights @ memory  # (b, num_reads, w)
        if self.tracing:
            self.record("read", read_weights[:, :, None, :])  # (b, num_reads, 1, n)
            self.record("write", write_weights[:, :, None, :])  # (b, num_writes, 1, n)
        y = self.out(torch.cat([h, reads.flatten(1)], -1))  # (b, output_size)
        return y, NTMState(memory, read_weights, write_weights, reads, controller)

    def forward(self, x: Tensor, state: NTMState | None = None) -> Tensor:
        """Run the whole sequence from `state` (default `initial_state`).

        Args:
            x: (b, t, input_size) inputs.
            state: the NTMState to start from.
        Returns:
            (b, t, output_size) logits.
        """
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be (b, t, input_size={self.input_size}); got {tuple(x.shape)}")
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        # under vmap the eager step: see core.fast.under_vmap
        if self.path != "eager" and not self.tracing and not under_vmap(x, self.out.weight):
            return self._fused_forward(x, state)
        outputs = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            outputs.append(y)
        return torch.stack(outputs, 1)  # (b, t, output_size)

    def _fused_forward(self, x: Tensor, state: NTMState) -> Tensor:
        """`forward` through `memory.fused` (compiled when `path` is "compiled"); the same logits as `step`."""
        cfg = self.config
        b, H = x.shape[0], cfg.controller_size
        x_parts, recurrent = fused.controller_inputs(self.controller, x, self.input_size)  # (t, b, G)
        weights = fused.Weights(recurrent, self.heads.weight.t().contiguous(), self.heads.bias)  # W_p (H, P)
        if cfg.controller == "lstm":
            h, c = state.controller  # (b, H) each
        else:  # no recurrent controller state: zero placeholders of the shapes the steps expect
            h, c = x.new_zeros(b, H), x.new_zeros(b, 0)
        memory = (state.memory, *fused.unit_rows(state.memory), state.read_weights, state.write_weights)
        sizes = ntm_steps.FusedSizes(cfg.word_size, cfg.shift_range, cfg.num_reads, cfg.num_writes)
        steps = ntm_steps.steps(self.path == "compiled", sizes)
        hs, reads = fused.run(
            steps, x_parts, weights, fused.Carry(h, c, state.reads, memory)
        )  # (b, t, H), (b, t, R, w)
        return self.out(torch.cat([hs, reads.flatten(2)], -1))  # (b, t, output_size)
