"""The fast steps of the NTM and the DNC: fused forward maths and a hand-written backward through time.

The readable steps (`NTM.step`, `DNC.step`, `addressing.py`) are the reference, and autograd
differentiates them. The fast paths run the same equations in fewer, larger ops, and replace the
autograd graph of a whole sequence by one node (`Recurrence`) whose backward walks the time steps
in reverse with the derivatives written out. Each step is then two plain functions of tensors, a
forward and a backward, which `core.fast.compiled` can compile without autograd (`compiled_steps`).

    controller   gates_t = X_t + [r_{t-1}; h_{t-1}] W_c, with X = x W_x + b for every t in one matmul
                 before the loop; LSTM cell (nn.LSTMCell's gate order i, f, g, o) or one tanh layer
                 `controller_inputs`, `lstm_forward`, `lstm_backward`
    head params  p_t = h_t W_p + b_p                                    (the heads / interface layer)
    memory       the machine's own part (`ntm_steps`, `dnc_steps`): (p_t, memory state) -> reads r_t
    outputs      [h_t; r_t] for every t; the output layer runs on all of them after the loop
    weights      dW_c = sum_t [r_{t-1}; h_{t-1}]^T dgates_t and dW_p = sum_t h_t^T dp_t: one matmul each

Shared memory maths, each with its derivative:

    unit rows    x^ = x / sqrt(|x|^2 + eps^2), the cosine score's normalisation   `unit_rows`
                 dx = rho (dx^ - x^ (x^ . dx^)), rho = 1 / sqrt(|x|^2 + eps^2)
    content      w^c = softmax_i(beta k^ . M^_i) (eq. 5-6 of the NTM; the DNC's C(M, k, beta)),
                 with M^ kept from the step that wrote M, so each memory is normalised once
                 `content_weights`, `content_backward`
    softmax      dz = y o (dy - (y . dy))                                       `softmax_backward`

The softmax over slots is the attention core's: content addressing calls `core.attend` with the
dot score on normalised rows (value width zero: only the weights are used).

`step_functions` makes a machine's forward and backward step from its memory part (with
`recompute`, the backward redoes the step from its matmul outputs); `run` drives them, through
`Recurrence` when a gradient is wanted, on detached tensors: one compiled graph each per run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core import attend
from attnlab.core.fast import compiled

NORM_EPS = 1e-6  # the cosine score's smoothing of the norms (core.scores.cosine)

Tensors = tuple[Tensor, ...]


# ---- controller -------------------------------------------------------------------------------


def controller_inputs(controller: nn.Module, x: Tensor, input_size: int) -> tuple[Tensor, Tensor]:
    """Split a controller (nn.LSTMCell or nn.Linear over [x_t; r_{t-1}]) at its input columns.

    Args:
        controller: the controller module; its input is [x_t; r_{t-1}] (and h_{t-1} for an LSTM).
        x: (b, t, input_size) the whole input sequence.
        input_size: columns of x_t at the front of the controller's input.
    Returns:
        X (t, b, G) the x_t part of the pre-activations, biases included, for every t (G = 4 H
        for an LSTM, H for a tanh layer); and W_c (R W [+ H], G), the weights applied to
        [r_{t-1}; h_{t-1}] (LSTM) or r_{t-1} (tanh layer) inside the loop.
    """
    if isinstance(controller, nn.LSTMCell):
        w_ih, w_hh = controller.weight_ih, controller.weight_hh  # (4 H, input_size + R W), (4 H, H)
        bias = controller.bias_ih + controller.bias_hh if controller.bias else None  # (4 H,)
        recurrent = torch.cat([w_ih[:, input_size:], w_hh], 1).t()  # (R W + H, 4 H)
        weight_x = w_ih[:, :input_size]  # (4 H, input_size)
    elif isinstance(controller, nn.Linear):
        weight = controller.weight  # (H, input_size + R W)
        bias, recurrent, weight_x = controller.bias, weight[:, input_size:].t(), weight[:, :input_size]  # (R W, H)
    else:
        raise TypeError(f"controller must be nn.LSTMCell or nn.Linear, got {type(controller).__name__}")
    x_part = F.linear(x.transpose(0, 1), weight_x, bias)  # (t, b, G)
    return x_part.contiguous(), recurrent.contiguous()


def lstm_forward(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensors]:
    """An LSTM cell from its pre-activations, in nn.LSTMCell's gate order (i, f, g, o).

    Args:
        gates: (b, 4 H) W_ih x + W_hh h + b_ih + b_hh; c: (b, H) the previous cell state.
    Returns:
        h (b, H), the new cell state c (b, H), and what `lstm_backward` needs.
    """
    i, f, _, o = torch.sigmoid(gates).chunk(4, 1)  # (b, H) each; one sigmoid over all four gates
    g = torch.tanh(gates.chunk(4, 1)[2])  # (b, H)
    c_new = f * c + i * g  # (b, H)
    tc = torch.tanh(c_new)  # (b, H)
    return o * tc, c_new, (i, f, g, o, c, tc)


def lstm_backward(dh: Tensor, dc: Tensor, saved: Tensors) -> tuple[Tensor, Tensor]:
    """Gradients of `lstm_forward`: d gates (b, 4 H) and d c_{t-1} (b, H) from dh, dc (b, H)."""
    i, f, g, o, c, tc = saved
    dc = dc + dh * o * (1 - tc * tc)  # (b, H)
    do = dh * tc
    dgates = torch.cat([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g), do * o * (1 - o)], 1)
    return dgates, dc * f  # (b, 4 H), (b, H)


# ---- shared memory maths ----------------------------------------------------------------------


def unit_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Rows scaled to length about one, as the cosine score does it: x / sqrt(|x|^2 + eps^2).

    Args:
        x: (..., w) keys or memory rows.
    Returns:
        (..., w) the normalised rows (a zero row stays zero) and (..., 1) the scales rho."""
    rho = torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + NORM_EPS * NORM_EPS)  # (..., 1)
    return x * rho, rho


def unit_rows_backward(d_unit: Tensor, unit: Tensor, rho: Tensor) -> Tensor:
    """Gradient of `unit_rows` for x, given d x^ (..., w), x^ (..., w) and rho (..., 1)."""
    return rho * (d_unit - unit * (unit * d_unit).sum(-1, keepdim=True))  # (..., w)


def softmax_backward(dy: Tensor, y: Tensor) -> Tensor:
    """Gradient of a softmax over the last dim for its logits, given dy and the output y."""
    return y * (dy - (dy * y).sum(-1, keepdim=True))


def product_of_others(x: Tensor, dim: int) -> Tensor:
    """Along a short dim (heads), each entry's product of all the other entries, without dividing.

    Args:
        x: any shape; dim: the dim to multiply along, a few entries long (read or write heads).
    Returns:
        x's shape: prod_{k' != k} x[k'] at every k; a zero elsewhere on the dim is safe.
    """
    parts = x.unbind(dim)
    before, after = [torch.ones_like(parts[0])], [torch.ones_like(parts[0])]
    for k in range(len(parts) - 1):
        before.append(before[-1] * parts[k])  # prod of x[:k + 1]
        after.append(after[-1] * parts[-1 - k])  # prod of x[-1 - k:]
    return torch.stack([b * a for b, a in zip(before, after[::-1])], dim)


def content_weights(keys: Tensor, memory_unit: Tensor, strength: Tensor) -> Tensor:
    """Content addressing against a memory already normalised by `unit_rows`.

    Args:
        keys: (b, r, w) one key per head; strength: (b, r) key strengths beta.
        memory_unit: (b, n, w) the normalised memory M^.
    Returns:
        (b, r, n) weightings, each row summing to one; equal to `addressing.content_weights`.
    """
    query = unit_rows(keys)[0] * strength[..., None]  # (b, r, w): beta k^
    m = memory_unit[:, None]  # (b, 1, n, w)
    weights = attend(query[:, None], m, m[..., :0], score="dot", need_weights=True).weights  # (b, 1, r, n)
    assert weights is not None  # need_weights=True always returns them
    return weights[:, 0]  # (b, r, n)


def content_backward(
    d_weights: Tensor, weights: Tensor, keys: Tensor, strength: Tensor, memory_unit: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of `content_weights`, given its output.

    Args:
        d_weights: (b, r, n) gradient of the weights.
        weights: (b, r, n) the weights `content_weights` returned.
        keys: (b, r, w), strength: (b, r), memory_unit: (b, n, w): its arguments.
    Returns:
        d keys (b, r, w), d strength (b, r), d M^ (b, n, w).
    """
    key_unit, key_rho = unit_rows(keys)  # (b, r, w), (b, r, 1): cheaper to redo than to keep
    d_logits = softmax_backward(d_weights, weights)  # (b, r, n)
    d_query = d_logits @ memory_unit  # (b, r, w)
    d_memory_unit = (d_logits[..., None] * (key_unit * strength[..., None])[:, :, None, :]).sum(1)  # (b, n, w)
    d_strength = (d_query * key_unit).sum(-1)  # (b, r)
    d_keys = unit_rows_backward(d_query * strength[..., None], key_unit, key_rho)  # (b, r, w)
    return d_keys, d_strength, d_memory_unit


# ---- the recurrence: one autograd node for the whole sequence -----------------------------------

# A machine's memory part: forward (params (b, P), memory state, sizes, the state it produced or None:
# given it, it need not recompute it) -> (reads (b, R, W), new memory state, saved); backward
# (d reads, d new memory state, saved, sizes) -> (d params, d state).
MemoryForward = Callable[[Tensor, Tensors, Any, "Tensors | None"], tuple[Tensor, Tensors, Tensors]]
MemoryBackward = Callable[[Tensor, Tensors, Tensors, Any], tuple[Tensor, Tensors]]


class Carry(NamedTuple):
    """The recurrent state between two steps (or its gradient, in the backward pass)."""

    h: Tensor  # (b, H)
    c: Tensor  # (b, H); zeros of shape (b, 0) for a tanh controller
    reads: Tensor  # (b, R, W)
    memory: Tensors  # the machine's memory state


class Weights(NamedTuple):
    """The weights a step multiplies by, arranged for the time loop (`controller_inputs`)."""

    recurrent: Tensor  # (R W [+ H], G) W_c
    params_weight: Tensor  # (H, P) W_p
    params_bias: Tensor  # (P,) b_p


def cell_forward(
    memory_forward: MemoryForward, x_part: Tensor, carry: Carry, weights: Weights, sizes: Any
) -> tuple[Carry, Tensors, Tensors]:
    """One time step: controller, head parameters, the machine's memory part.

    Args:
        memory_forward: the machine's memory part; sizes: the machine's sizes, passed to it.
        x_part: (b, G) this step's row of `controller_inputs`.
        carry: the state after the previous step; weights: W_c, W_p, b_p.
    Returns:
        the state after this step; the step's two matmul outputs, gates (b, G) and params (b, P),
        from which `cell_tail` redoes the rest; and what `cell_backward` needs.
    """
    lstm = carry.c.shape[1] > 0
    z = torch.cat([carry.reads.flatten(1), carry.h], 1) if lstm else carry.reads.flatten(1)  # (b, R W [+ H])
    gates = torch.addmm(x_part, z, weights.recurrent)  # (b, G)
    h, c, control = controller_cell(gates, carry.c)  # (b, H) each
    params = torch.addmm(weights.params_bias, h, weights.params_weight)  # (b, P)
    reads, memory, saved = memory_forward(params, carry.memory, sizes, None)  # (b, R, W)
    return Carry(h, c, reads, memory), (gates, params), (h, *control, *saved)


def controller_cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensors]:
    """The controller's nonlinearity: an LSTM cell when c has columns, one tanh layer when c is (b, 0)."""
    if c.shape[1] > 0:
        return lstm_forward(gates, c)
    return torch.tanh(gates), c, ()


def cell_tail(memory_forward: MemoryForward, matmuls: Tensors, carry: Carry, after: Carry, sizes: Any) -> Tensors:
    """What `cell_forward` keeps for the backward, redone from its matmul outputs (gates, params),
    the state before the step and the state after it."""
    gates, params = matmuls
    _, _, control = controller_cell(gates, carry.c)
    return (after.h, *control, *memory_forward(params, carry.memory, sizes, after.memory)[2])


def cell_backward(
    memory_backward: MemoryBackward,
    d_h: Tensor,
    d_reads: Tensor,
    d_carry: Carry,
    saved: Tensors,
    weights: Weights,
    sizes: Any,
) -> tuple[Carry, Tensor, Tensor]:
    """The gradients of one `cell_forward` step, in reverse.

    Args:
        memory_backward: the machine's memory part's backward; sizes: the machine's sizes.
        d_h: (b, H) and d_reads: (b, R, W), gradients from this step's outputs.
        d_carry: the gradient of the state this step produced.
        saved: what this step's `cell_forward` returned to keep; weights: W_c, W_p, b_p.
    Returns:
        the gradient of the state this step started from, d gates (b, G) and d params (b, P);
        the last two give the weights' gradients once every step is done.
    """
    lstm = d_carry.c.shape[1] > 0
    h, rest = saved[0], saved[1:]
    control, memory_saved = (rest[:6], rest[6:]) if lstm else ((), rest)
    d_params, d_memory = memory_backward(d_reads + d_carry.reads, d_carry.memory, memory_saved, sizes)  # (b, P)
    d_h = d_h + d_carry.h + d_params @ weights.params_weight.t()  # (b, H)
    if lstm:
        d_gates, d_c = lstm_backward(d_h, d_carry.c, control)  # (b, G), (b, H)
    else:
        d_gates, d_c = d_h * (1 - h * h), d_carry.c  # (b, H), (b, 0)
    d_z = d_gates @ weights.recurrent.t()  # (b, R W [+ H])
    b, R, W = d_carry.reads.shape
    # contiguous, like the zeros the last step starts from: a compiled step sees the same strides every call
    d_reads_prev = d_z[:, : R * W].reshape(b, R, W).contiguous()  # (b, R, W)
    d_h_prev = d_z[:, R * W :].contiguous() if lstm else torch.zeros_like(d_h)  # (b, H)
    return Carry(d_h_prev, d_c, d_reads_prev, d_memory), d_gates, d_params


def step_functions(memory_forward: MemoryForward, memory_backward: MemoryBackward, recompute: bool) -> tuple[Any, Any]:
    """A machine's forward and backward step from its memory part (`Steps` takes them).

    recompute=False: the forward keeps what the backward needs (fewest ops: the "fast" path).
    recompute=True: the forward keeps only its two matmul outputs and the backward redoes the rest
    from them and the states before and after the step (`cell_tail`): a compiled step passes a few
    tensors instead of dozens and fuses the recomputation into the backward's loops ("compiled").
    """

    def forward(x_part: Tensor, carry: Carry, weights: Weights, sizes: Any) -> tuple[Carry, Tensors]:
        new, matmuls, saved = cell_forward(memory_forward, x_part, carry, weights, sizes)
        return (new, matmuls) if recompute else (new, saved)

    def backward(
        d_h: Tensor, d_reads: Tensor, d_carry: Carry, saved: Any, weights: Weights, sizes: Any
    ) -> tuple[Carry, Tensor, Tensor]:
        if recompute:
            matmuls, carry, after = saved
            saved = cell_tail(memory_forward, matmuls, carry, after, sizes)
        return cell_backward(memory_backward, d_h, d_reads, d_carry, saved, weights, sizes)

    return forward, backward


def compiled_steps(forward: Callable[..., Any], backward: Callable[..., Any], name: str) -> tuple[Any, Any]:
    """A machine's step functions through `core.fast.compiled`, with inductor's C++ wrapper: at these
    sizes the Python wrapper (a hundred small buffers to allocate and pass) takes about as long as
    the fused kernel itself; the C++ one saves about 10% of a training step here."""
    return _cpp_wrapper(compiled(forward, name)), _cpp_wrapper(compiled(backward, f"{name} backward"))


def _cpp_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
    import torch._inductor.config as inductor_config  # imported here: slow to import, needed only when compiling

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        with inductor_config.patch(cpp_wrapper=True):  # read when a call compiles; harmless otherwise
            return fn(*args)

    return call


class Steps(NamedTuple):
    """A machine's two step functions (from `step_functions`, plain or compiled) and its sizes."""

    forward: Callable[[Tensor, Carry, Weights, Any], tuple[Carry, Tensors]]
    backward: Callable[[Tensor, Tensor, Carry, Any, Weights, Any], tuple[Carry, Tensor, Tensor]]
    sizes: Any
    recompute: bool  # the backward takes (matmul outputs, carry before, carry after) and redoes the rest


class StepMaker:
    """A machine's `Steps` from its memory part: the plain step functions, and compiled ones made on first use.

    compiled_recomputes: whether the compiled backward redoes each step (`step_functions`' recompute).
    """

    def __init__(self, memory_forward: MemoryForward, memory_backward: MemoryBackward, *,
                 compiled_recomputes: bool, name: str) -> None:  # fmt: skip
        self.parts = (memory_forward, memory_backward)
        self.compiled_recomputes = compiled_recomputes
        self.name = name
        self.plain = step_functions(memory_forward, memory_backward, recompute=False)
        self._compiled: tuple[Any, Any] | None = None

    def __call__(self, compile_them: bool, sizes: Any) -> Steps:
        """The step functions for `run`: compiled (`core.fast.compiled`, once per process) or plain."""
        if not compile_them:
            return Steps(*self.plain, sizes, recompute=False)
        if self._compiled is None:
            functions = step_functions(*self.parts, recompute=self.compiled_recomputes)
            self._compiled = compiled_steps(*functions, self.name)
        return Steps(*self._compiled, sizes, recompute=self.compiled_recomputes)


class Recurrence(torch.autograd.Function):
    """Every step of a sequence as one autograd node, with a hand-written backward through time."""

    @staticmethod
    def forward(ctx: Any, steps: Steps, x_parts: Tensor, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        weights, start = Weights(*tensors[:3]), tensors[3:]  # one by one: autograd tracks only direct arguments
        hs, reads, saved = forward_steps(steps, x_parts, weights, unflatten_carry(start))
        ctx.steps, ctx.saved = steps, saved
        ctx.save_for_backward(*weights, *start, hs, reads)
        return hs, reads

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, d_hs: Tensor, d_reads: Tensor) -> tuple[Any, ...]:
        steps, saved = ctx.steps, ctx.saved
        tensors = [t.detach() for t in ctx.saved_tensors]
        weights, start, (hs, reads) = Weights(*tensors[:3]), tensors[3:-2], tensors[-2:]
        d_hs, d_reads = d_hs.contiguous(), d_reads.contiguous()
        d_carry = unflatten_carry([torch.zeros_like(t) for t in start])
        d_gates, d_params = [], []
        for t in range(len(saved) - 1, -1, -1):
            d_h, d_read = d_hs[t].clone(), d_reads[t].clone()  # own storage: see `forward_steps`
            d_carry, d_gate, d_param = steps.backward(d_h, d_read, d_carry, saved[t], weights, steps.sizes)
            d_gates.append(d_gate)
            d_params.append(d_param)
        d_gates_all, d_params_all = torch.stack(d_gates[::-1]), torch.stack(d_params[::-1])  # (t, b, G), (t, b, P)
        # the weights' gradients summed over time: dW = sum_t input_t^T d output_t, a matmul or two each
        d_recurrent = summed_over_time(start[2].flatten(1), reads.flatten(2), d_gates_all)  # (R W, G): r_{t-1}
        if start[1].shape[1] > 0:  # an LSTM also multiplies h_{t-1}
            d_recurrent = torch.cat([d_recurrent, summed_over_time(start[0], hs, d_gates_all)])  # (R W + H, G)
        d_params_weight = hs.flatten(0, 1).t() @ d_params_all.flatten(0, 1)  # (H, P)
        d_weights = (d_recurrent, d_params_weight, d_params_all.sum((0, 1)))
        return (None, d_gates_all, *d_weights, *flatten_carry(d_carry))


def summed_over_time(first: Tensor, outputs: Tensor, d: Tensor) -> Tensor:
    """sum_t input_t^T d_t where step t's input is the previous step's output (first at t = 0).

    Args:
        first: (b, k) the input of the first step; outputs: (t, b, k) every step's output;
        d: (t, b, n) every step's output gradient.
    Returns:
        (k, n) the summed products."""
    return first.t() @ d[0] + outputs[:-1].flatten(0, 1).t() @ d[1:].flatten(0, 1)  # (k, n)


def flatten_carry(carry: Carry) -> Tensors:
    return (carry.h, carry.c, carry.reads, *carry.memory)


def unflatten_carry(flat: Sequence[Tensor]) -> Carry:
    return Carry(flat[0], flat[1], flat[2], tuple(flat[3:]))


def run(steps: Steps, x_parts: Tensor, weights: Weights, start: Carry) -> tuple[Tensor, Tensor]:
    """Every step of a sequence: one autograd node when a gradient is wanted, plain steps otherwise.

    Args:
        steps: the machine's step functions; weights: W_c, W_p, b_p.
        x_parts: (t, b, G) from `controller_inputs`.
        start: the state before the first step.
    Returns:
        h (b, t, H) and reads (b, t, R, W) of every step."""
    flat = flatten_carry(start)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x_parts, *weights, *flat)):
        hs, reads = Recurrence.apply(steps, x_parts, *weights, *flat)
    else:
        with torch.no_grad():  # nothing to differentiate
            hs, reads, _ = forward_steps(steps, x_parts, weights, start)
    return hs.transpose(0, 1), reads.transpose(0, 1)  # (b, t, H), (b, t, R, W)


def forward_steps(steps: Steps, x_parts: Tensor, weights: Weights, start: Carry) -> tuple[Tensor, Tensor, list[Any]]:
    """Every forward step, without autograd; returns hs (t, b, H), reads (t, b, R, W) and what each step keeps.

    The step functions see detached tensors only, so a compiled step meets the same inputs (none
    requiring grad) at every step, in training and in evaluation: one graph serves them all. Each
    row of x_parts is a copy, not a view: once a batch change has made a compiled graph's shapes
    dynamic, a view's offset into x_parts would be guarded on too and recompile the step."""
    weights = Weights(*(t.detach() for t in weights))
    carry = unflatten_carry([t.detach() for t in flatten_carry(start)])
    hs, reads, saved = [], [], []
    for x_part in x_parts.detach():
        before = carry
        carry, kept = steps.forward(x_part.clone(), carry, weights, steps.sizes)
        hs.append(carry.h)
        reads.append(carry.reads)
        saved.append((kept, before, carry) if steps.recompute else kept)
    return torch.stack(hs), torch.stack(reads), saved
