"""The Differentiable Neural Computer (Graves et al. 2016, "Hybrid computing using a neural network
with dynamic external memory", Nature 538; equations from its Methods section).

An LSTM controller reads x_t and the previous reads, emits an interface vector xi_t, and the
memory M (N slots of W) is written by one head and read by R heads. Methods subsection -> code
(the equation functions live in `addressing`, below this module and `dnc_steps`, which both call
them):

    "Interface parameters"
        xi_t = W_xi h_t, split into k^r, beta^r, k^w, beta^w, e, v, f, g^a, g^w, pi `interface_fields`
        oneplus(x) = 1 + log(1 + e^x) for strengths; sigmoid for e, f, g^a, g^w; softmax for pi
    "Content-based addressing"
        C(M, k, beta)[i] = softmax_i(beta cos(k, M[i]))                           `content_weights`
    "Dynamic memory allocation"
        psi_t = prod_i (1 - f^i_t w^{r,i}_{t-1})                                    `usage_update`
        u_t   = (u_{t-1} + w^w_{t-1} - u_{t-1} o w^w_{t-1}) o psi_t
        phi_t = slot indices sorted by ascending usage (the free list)              `allocation`
        a_t[phi_t[j]] = (1 - u_t[phi_t[j]]) prod_{i<j} u_t[phi_t[i]]
    "Write weighting"
        c^w_t = C(M_{t-1}, k^w_t, beta^w_t)
        w^w_t = g^w_t (g^a_t a_t + (1 - g^a_t) c^w_t)                            `write_weighting`
    "Reading and writing to memory"
        M_t = M_{t-1} o (E - w^w_t e_t^T) + w^w_t v_t^T                            `erase_and_add`
        r^i_t = M_t^T w^{r,i}_t                                                    `reads`
    "Temporal memory linkage"
        p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t                              `precedence_update`
        L_t[i, j] = (1 - w^w_t[i] - w^w_t[j]) L_{t-1}[i, j] + w^w_t[i] p_{t-1}[j], L_t[i, i] = 0
                                                                                   `link_update`
        f^i_t = L_t w^{r,i}_{t-1},  b^i_t = L_t^T w^{r,i}_{t-1}               `directional_weights`
    "Read weighting"
        c^{r,i}_t = C(M_t, k^{r,i}_t, beta^{r,i}_t)
        w^{r,i}_t = pi^i_t[1] b^i_t + pi^i_t[2] c^{r,i}_t + pi^i_t[3] f^i_t          `read_weighting`
    "Controller network"
        h_t = LSTM([x_t; r^1_{t-1} .. r^R_{t-1}]),  y_t = W_y [h_t; r^1_t .. r^R_t]   `DNC.step`

The state carries every quantity with a t-1 subscript above (`DNCState`). The softmax over
slots is the attention core's (through `content_weights`); the read modes' softmax is over three
modes, not slots. Each step is traced, in this order, as kind "write" (b, 1, 1, N) with
`allocation_gate=` (b,), then kind "read" (b, R, 1, N) with `modes=` (b, R, 3).

Paths (`core.fast`): "eager" runs `DNC.step` once per time step and autograd differentiates it
(and it runs whenever a trace is attached). "fast" runs the same equation functions through
`memory.fused` with the memory part of `dnc_steps`: the controller's input projection of every
x_t in one matmul before the time loop and the output layer of every step in one matmul after
it, and one autograd node for the whole sequence whose backward walks the steps in reverse with
the derivatives written out. "compiled" runs those step functions, forward and backward, through
`core.fast.compiled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnlab.core import Traced
from attnlab.core.fast import FastPath, under_vmap
from attnlab.memory import dnc_steps, fused
from attnlab.memory.addressing import (
    Interface,
    allocation,
    content_weights,
    directional_weights,
    erase_and_add,
    interface_fields,
    interface_sizes,
    link_update,
    precedence_update,
    read_weighting,
    usage_update,
    write_weighting,
)


@dataclass(frozen=True)
class DNCConfig:
    """Sizes of a differentiable neural computer (the input and output widths are the task's: DNC's arguments)."""

    controller_size: int = 64  # hidden size of the LSTM controller
    memory_size: int = 64  # N, memory slots
    word_size: int = 16  # W, features per slot
    num_reads: int = 4  # R, read heads
    num_writes: int = 1  # write heads; the paper's single write head is the only one supported

    def __post_init__(self) -> None:
        for name in ("controller_size", "memory_size", "word_size", "num_reads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_writes != 1:
            raise ValueError(f"num_writes must be 1 (one write head, as in the paper), got {self.num_writes}")


class DNCState(NamedTuple):
    """The recurrent state: memory, its bookkeeping, the last weightings and reads, the controller."""

    memory: Tensor  # (b, N, W) M_{t-1}
    usage: Tensor  # (b, N) u_{t-1}
    link: Tensor  # (b, N, N) L_{t-1}, L[i, j]: slot i was written right after slot j
    precedence: Tensor  # (b, N) p_{t-1}
    read_weights: Tensor  # (b, R, N) w^r_{t-1}
    write_weights: Tensor  # (b, N) w^w_{t-1}
    reads: Tensor  # (b, R, W) r_{t-1}
    controller: tuple[Tensor, Tensor]  # LSTM (h, c), each (b, controller_size)


class DNC(FastPath, Traced, nn.Module):
    """A differentiable neural computer: LSTM controller, one write head, R read heads.

    Args:
        config: the computer's sizes (DNCConfig).
        input_size: features of x_t.
        output_size: outputs per step (logits; the task applies its own sigmoid or softmax).
    """

    Config = DNCConfig
    fast_step_name = "fused DNC step"

    def __init__(self, config: DNCConfig, input_size: int, output_size: int):
        super().__init__()
        for name, size in (("input_size", input_size), ("output_size", output_size)):
            if size < 1:
                raise ValueError(f"{name} must be >= 1, got {size}")
        self.config = config
        self.input_size, self.output_size = input_size, output_size
        R, W = config.num_reads, config.word_size
        self.controller = nn.LSTMCell(input_size + R * W, config.controller_size)
        self.interface = nn.Linear(config.controller_size, sum(interface_sizes(R, W)))  # W_xi
        self.output = nn.Linear(config.controller_size + R * W, output_size)  # [W_y, W_r]

    def initial_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> DNCState:
        """Empty memory, zero usage, links, precedence, weightings and reads, zero controller state.

        Args:
            batch_size: b.
            device, dtype: default to the parameters'.
        Returns:
            DNCState of zeros with the shapes listed on its fields.
        """
        p = self.interface.weight
        device, dtype = device or p.device, dtype or p.dtype
        cfg, b = self.config, batch_size
        N, W, R, H = cfg.memory_size, cfg.word_size, cfg.num_reads, cfg.controller_size

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(*shape, device=device, dtype=dtype)

        return DNCState(
            memory=zeros(b, N, W),
            usage=zeros(b, N),
            link=zeros(b, N, N),
            precedence=zeros(b, N),
            read_weights=zeros(b, R, N),
            write_weights=zeros(b, N),
            reads=zeros(b, R, W),
            controller=(zeros(b, H), zeros(b, H)),
        )

    def _interface(self, h: Tensor) -> Interface:
        return interface_fields(self.interface(h), self.config.num_reads, self.config.word_size)

    def step(self, x: Tensor, state: DNCState) -> tuple[Tensor, DNCState]:
        """One time step: controller, interface, write, links, read, output.

        Args:
            x: (b, input_size) x_t.
            state: the state after step t-1 (`initial_state` before the first).
        Returns:
            y (b, output_size) logits, and the state after step t.
        """
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (b, input_size={self.input_size}); got {tuple(x.shape)}")
        b = x.shape[0]
        chi = torch.cat([x, state.reads.flatten(1)], dim=-1)  # (b, input_size + R W)
        h, c = self.controller(chi, state.controller)  # (b, controller_size) each
        xi = self._interface(h)

        usage = usage_update(state.usage, state.write_weights, state.read_weights, xi.free_gates)  # (b, N)
        write_content = content_weights(xi.write_key, state.memory, xi.write_strength)[:, 0]  # (b, N)
        write_weights = write_weighting(write_content, allocation(usage), xi.alloc_gate, xi.write_gate)  # (b, N)
        memory = erase_and_add(state.memory, write_weights, xi.erase, xi.add)  # (b, N, W)
        if self.tracing:
            self.record("write", write_weights[:, None, None, :], allocation_gate=xi.alloc_gate)  # (b, 1, 1, N)

        link = link_update(state.link, state.precedence, write_weights)  # (b, N, N)
        precedence = precedence_update(state.precedence, write_weights)  # (b, N)

        forward, backward = directional_weights(link, state.read_weights)  # (b, R, N) each
        read_content = content_weights(xi.read_keys, memory, xi.read_strengths)  # (b, R, N)
        read_weights = read_weighting(xi.modes, backward, read_content, forward)  # (b, R, N)
        reads = read_weights @ memory  # (b, R, W): r^i = M^T w^{r,i}

        if self.tracing:
            self.record("read", read_weights[:, :, None, :], modes=xi.modes)  # (b, R, 1, N)

        y = self.output(torch.cat([h, reads.reshape(b, -1)], dim=-1))  # (b, output_size)
        new = DNCState(memory, usage, link, precedence, read_weights, write_weights, reads, (h, c))
        return y, new

    def forward(self, x: Tensor, state: DNCState | None = None) -> Tensor:
        """Run a whole sequence, one `step` per time step (`memory.fused` on the fast paths).

        Args:
            x: (b, t, input_size) inputs.
            state: the state to start from; default `initial_state` (empty memory).
        Returns:
            (b, t, output_size) logits.
        """
        if x.dim() != 3:
            raise ValueError(f"x must have shape (b, t, input_size); got {tuple(x.shape)}")
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        # under vmap the eager step: see core.fast.under_vmap
        if self.path != "eager" and not self.tracing and not under_vmap(x, self.interface.weight):
            return self._fused_forward(x, state)
        outputs = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            outputs.append(y)
        return torch.stack(outputs, dim=1)  # (b, t, output_size)

    def _fused_forward(self, x: Tensor, state: DNCState) -> Tensor:
        """`forward` through `memory.fused` (compiled when `path` is "compiled"); the same logits as `step`."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x must have shape (b, t, input_size={self.input_size}); got {tuple(x.shape)}")
        cfg = self.config
        x_parts, recurrent = fused.controller_inputs(self.controller, x, self.input_size)  # (t, b, 4 H)
        weights = fused.Weights(recurrent, self.interface.weight.t().contiguous(), self.interface.bias)  # (H, P)
        memory = (
            state.memory,
            *fused.unit_rows(state.memory),
            state.usage,
            state.link,
            state.precedence,
            state.read_weights,
            state.write_weights,
        )
        start = fused.Carry(*state.controller, state.reads, memory)
        off_diagonal = 1 - torch.eye(cfg.memory_size, dtype=x.dtype, device=x.device)  # (N, N)
        steps = dnc_steps.steps(
            self.path == "compiled", dnc_steps.FusedSizes(cfg.num_reads, cfg.word_size, off_diagonal)
        )
        hs, reads = fused.run(steps, x_parts, weights, start)  # (b, t, H), (b, t, R, W)
        return self.output(torch.cat([hs, reads.flatten(2)], -1))  # (b, t, output_size)
