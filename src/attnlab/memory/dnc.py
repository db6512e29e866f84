"""The Differentiable Neural Computer (Graves et al. 2016, "Hybrid computing using a neural network
with dynamic external memory", Nature 538; equations from its Methods section).

An LSTM controller reads x_t and the previous reads, emits an interface vector xi_t, and the
memory M (N slots of W) is written by one head and read by R heads. Methods subsection -> code:

    "Interface parameters"
        xi_t = W_xi h_t, split into k^r, beta^r, k^w, beta^w, e, v, f, g^a, g^w, pi    `_interface`
        oneplus(x) = 1 + log(1 + e^x) for strengths; sigmoid for e, f, g^a, g^w; softmax for pi
    "Content-based addressing"
        C(M, k, beta)[i] = softmax_i(beta cos(k, M[i]))                `addressing.content_weights`
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core import Traced
from attnlab.memory.addressing import content_weights


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


def usage_update(usage: Tensor, write_weights: Tensor, read_weights: Tensor, free_gates: Tensor) -> Tensor:
    """Memory usage after the last write and this step's frees ("Dynamic memory allocation").

        psi = prod_i (1 - f^i w^{r,i}_{t-1}),   u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} o w^w_{t-1}) o psi

    Args:
        usage: (b, N) u_{t-1}.
        write_weights: (b, N) w^w_{t-1}.
        read_weights: (b, R, N) w^r_{t-1}.
        free_gates: (b, R) f_t in [0, 1].
    Returns:
        (b, N) u_t in [0, 1].
    """
    retention = (1 - free_gates[:, :, None] * read_weights).prod(1)  # (b, N) psi
    return (usage + write_weights - usage * write_weights) * retention


def allocation(usage: Tensor) -> Tensor:
    """Allocation weighting: the least used slots get the weight ("Dynamic memory allocation").

        phi = argsort(u) ascending,   a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i]

    Ties: the sort is stable, so equal usages keep index order (the lower index is freer); the
    result never depends on how an unstable sort would order equal values. The values are the
    paper's exactly (no eps remapping of u). Gradients flow through the sorted usage values only;
    the permutation phi is a constant of the step, as in the paper.

    Args:
        usage: (b, N) u_t in [0, 1].
    Returns:
        (b, N) a_t, non-negative, summing to at most 1.
    """
    order = torch.sort(usage.detach(), dim=-1, stable=True).indices  # (b, N) phi
    sorted_usage = usage.gather(-1, order)  # (b, N)
    before = torch.cat([torch.ones_like(sorted_usage[:, :1]), sorted_usage[:, :-1]], dim=-1)  # (b, N)
    sorted_alloc = (1 - sorted_usage) * before.cumprod(-1)  # (b, N) exclusive product
    return torch.zeros_like(sorted_alloc).scatter(-1, order, sorted_alloc)  # (b, N) back to slot order


def write_weighting(content: Tensor, alloc: Tensor, alloc_gate: Tensor, write_gate: Tensor) -> Tensor:
    """Write weighting ("Write weighting"): w^w = g^w (g^a a + (1 - g^a) c^w).

    Args:
        content: (b, N) c^w, content weighting of the write key on M_{t-1}.
        alloc: (b, N) a_t.
        alloc_gate: (b,) g^a in [0, 1].
        write_gate: (b,) g^w in [0, 1].
    Returns:
        (b, N) w^w_t.
    """
    ga, gw = alloc_gate[:, None], write_gate[:, None]  # (b, 1)
    return gw * (ga * alloc + (1 - ga) * content)


def erase_and_add(memory: Tensor, write_weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """Memory write ("Reading and writing to memory"): M_t = M_{t-1} o (E - w^w e^T) + w^w v^T.

    Args:
        memory: (b, N, W) M_{t-1}.
        write_weights: (b, N) w^w_t.
        erase: (b, W) e_t in [0, 1].
        add: (b, W) v_t, the write vector.
    Returns:
        (b, N, W) M_t.
    """
    w = write_weights[:, :, None]  # (b, N, 1)
    return memory * (1 - w * erase[:, None, :]) + w * add[:, None, :]  # (b, N, W)


def precedence_update(precedence: Tensor, write_weights: Tensor) -> Tensor:
    """Precedence weighting ("Temporal memory linkage"): p_t = (1 - sum_i w^w[i]) p_{t-1} + w^w.

    Args:
        precedence: (b, N) p_{t-1}.
        write_weights: (b, N) w^w_t.
    Returns:
        (b, N) p_t: how much each slot was the last one written.
    """
    return (1 - write_weights.sum(-1, keepdim=True)) * precedence + write_weights


def link_update(link: Tensor, precedence_prev: Tensor, write_weights: Tensor) -> Tensor:
    """Temporal link matrix ("Temporal memory linkage").

        L_t[i, j] = (1 - w^w[i] - w^w[j]) L_{t-1}[i, j] + w^w[i] p_{t-1}[j],   L_t[i, i] = 0

    Args:
        link: (b, N, N) L_{t-1}.
        precedence_prev: (b, N) p_{t-1}, the precedence before this write.
        write_weights: (b, N) w^w_t.
    Returns:
        (b, N, N) L_t.
    """
    w_i, w_j = write_weights[:, :, None], write_weights[:, None, :]  # (b, N, 1), (b, 1, N)
    new = (1 - w_i - w_j) * link + w_i * precedence_prev[:, None, :]  # (b, N, N)
    off_diagonal = 1 - torch.eye(link.shape[-1], dtype=link.dtype, device=link.device)  # (N, N)
    return new * off_diagonal


def directional_weights(link: Tensor, read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward and backward weightings ("Temporal memory linkage"): f = L w^r, b = L^T w^r.

    Args:
        link: (b, N, N) L_t.
        read_weights: (b, R, N) w^r_{t-1}.
    Returns:
        forward (b, R, N): the slots written just after the ones read;
        backward (b, R, N): the slots written just before.
    """
    forward = read_weights @ link.transpose(1, 2)  # (b, R, N): f[r, i] = sum_j L[i, j] w[r, j]
    backward = read_weights @ link  # (b, R, N): b[r, j] = sum_i L[i, j] w[r, i]
    return forward, backward


def read_weighting(modes: Tensor, backward: Tensor, content: Tensor, forward: Tensor) -> Tensor:
    """Read weighting ("Read weighting"): w^r = pi[1] b + pi[2] c^r + pi[3] f.

    Args:
        modes: (b, R, 3) read modes pi (backward, content, forward), each row summing to 1.
        backward: (b, R, N) b_t.
        content: (b, R, N) c^r_t.
        forward: (b, R, N) f_t.
    Returns:
        (b, R, N) w^r_t.
    """
    return modes[..., 0:1] * backward + modes[..., 1:2] * content + modes[..., 2:3] * forward


class Interface(NamedTuple):
    """The interface vector xi_t split and squashed ("Interface parameters")."""

    read_keys: Tensor  # (b, R, W) k^r
    read_strengths: Tensor  # (b, R) beta^r >= 1
    write_key: Tensor  # (b, 1, W) k^w
    write_strength: Tensor  # (b, 1) beta^w >= 1
    erase: Tensor  # (b, W) e in [0, 1]
    add: Tensor  # (b, W) v, the write vector
    free_gates: Tensor  # (b, R) f in [0, 1]
    alloc_gate: Tensor  # (b,) g^a in [0, 1]
    write_gate: Tensor  # (b,) g^w in [0, 1]
    modes: Tensor  # (b, R, 3) pi, softmax over (backward, content, forward)


def _oneplus(x: Tensor) -> Tensor:
    return 1 + F.softplus(x)


class DNC(Traced, nn.Module):
    """A differentiable neural computer: LSTM controller, one write head, R read heads.

    Args:
        config: the computer's sizes (DNCConfig).
        input_size: features of x_t.
        output_size: outputs per step (logits; the task applies its own sigmoid or softmax).
    """

    Config = DNCConfig

    def __init__(self, config: DNCConfig, input_size: int, output_size: int):
        super().__init__()
        for name, size in (("input_size", input_size), ("output_size", output_size)):
            if size < 1:
                raise ValueError(f"{name} must be >= 1, got {size}")
        self.config = config
        self.input_size, self.output_size = input_size, output_size
        R, W = config.num_reads, config.word_size
        self._sizes = [R * W, R, W, 1, W, W, R, 1, 1, 3 * R]  # the fields of Interface, in order
        self.controller = nn.LSTMCell(input_size + R * W, config.controller_size)
        self.interface = nn.Linear(config.controller_size, sum(self._sizes))  # W_xi
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
        b, R, W = h.shape[0], self.config.num_reads, self.config.word_size
        rk, rs, wk, ws, e, v, f, ga, gw, pi = self.interface(h).split(self._sizes, dim=-1)
        return Interface(
            read_keys=rk.view(b, R, W),  # (b, R, W)
            read_strengths=_oneplus(rs),
            write_key=wk.view(b, 1, W),  # (b, 1, W)
            write_strength=_oneplus(ws),
            erase=torch.sigmoid(e),
            add=v,
            free_gates=torch.sigmoid(f),
            alloc_gate=torch.sigmoid(ga).squeeze(-1),  # (b,)
            write_gate=torch.sigmoid(gw).squeeze(-1),  # (b,)
            modes=torch.softmax(pi.view(b, R, 3), dim=-1),  # (b, R, 3): over modes, not slots
        )

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
        """Run a whole sequence, one `step` per time step.

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
        outputs = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            outputs.append(y)
        return torch.stack(outputs, dim=1)  # (b, t, output_size)
