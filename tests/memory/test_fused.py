import pytest
import torch
from torch import nn

from attnlab.core.scores import cosine
from attnlab.memory import fused
from attnlab.memory.addressing import content_weights

D = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _grads_by_autograd(fn, inputs, d_out):
    """Gradients of sum(out * d_out) for every input, by autograd."""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    outs = fn(*leaves)
    outs = outs if isinstance(outs, tuple) else (outs,)
    torch.autograd.backward(outs, d_out)
    return [t.grad for t in leaves]


def test_lstm_forward_and_backward_match_nn_lstm_cell():
    torch.manual_seed(0)
    cell = nn.LSTMCell(5, 4).double()
    x, h, c = torch.randn(3, 5, dtype=D), torch.randn(3, 4, dtype=D), torch.randn(3, 4, dtype=D)
    gates = x @ cell.weight_ih.t() + cell.bias_ih + h @ cell.weight_hh.t() + cell.bias_hh  # (3, 16)
    h_new, c_new, saved = fused.lstm_forward(gates.detach(), c)
    want_h, want_c = cell(x, (h, c))
    torch.testing.assert_close(h_new, want_h.detach())
    torch.testing.assert_close(c_new, want_c.detach())
    dh, dc = torch.randn(3, 4, dtype=D), torch.randn(3, 4, dtype=D)
    d_gates, d_c = fused.lstm_backward(dh, dc, saved)
    want = _grads_by_autograd(lambda g, c0: fused.lstm_forward(g, c0)[:2], (gates, c), (dh, dc))
    torch.testing.assert_close(d_gates, want[0])
    torch.testing.assert_close(d_c, want[1])


@pytest.mark.parametrize("kind", ["lstm", "linear"])
def test_controller_inputs_split_the_controller_at_the_input_columns(kind):
    torch.manual_seed(0)
    b, t, f, reads, H = 2, 4, 3, 5, 6
    module = nn.LSTMCell(f + reads, H) if kind == "lstm" else nn.Linear(f + reads, H)
    x, r, h = torch.randn(b, t, f), torch.randn(b, reads), torch.randn(b, H)
    x_parts, recurrent = fused.controller_inputs(module, x, f)
    assert x_parts.shape == (t, b, 4 * H if kind == "lstm" else H)
    z = torch.cat([r, h], 1) if kind == "lstm" else r
    got = x_parts[2] + z @ recurrent  # (b, G)
    if kind == "lstm":
        want = module.weight_ih @ torch.cat([x[:, 2], r], 1).t() + (module.weight_hh @ h.t())
        want = want.t() + module.bias_ih + module.bias_hh
    else:
        want = module(torch.cat([x[:, 2], r], 1))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=r"nn\.LSTMCell or nn\.Linear"):
        fused.controller_inputs(nn.GRUCell(3, 2), x, f)


def test_unit_rows_match_the_cosine_score_and_leave_zero_rows_zero():
    x = torch.randn(2, 5, 4, generator=_gen(), dtype=D)
    x[0, 1] = 0
    unit, rho = fused.unit_rows(x)
    torch.testing.assert_close(unit @ unit.transpose(1, 2), cosine(x[:, None], x[:, None])[:, 0])
    assert (unit[0, 1] == 0).all() and torch.isfinite(rho).all()
    d_unit = torch.randn_like(x)
    want = _grads_by_autograd(lambda t: fused.unit_rows(t)[0], (x,), (d_unit,))[0]
    torch.testing.assert_close(fused.unit_rows_backward(d_unit, unit, rho), want)


def test_content_weights_equal_the_addressing_function_and_their_backward_autograd():
    g = _gen(1)
    keys, memory = torch.randn(2, 3, 4, generator=g, dtype=D), torch.randn(2, 6, 4, generator=g, dtype=D)
    memory[1, 2] = 0  # an empty slot scores zero, no NaN
    strength = torch.rand(2, 3, generator=g, dtype=D) * 3
    memory_unit = fused.unit_rows(memory)[0]
    weights = fused.content_weights(keys, memory_unit, strength)
    torch.testing.assert_close(weights, content_weights(keys, memory, strength))
    planted = fused.content_weights(memory[:, :1], memory_unit, torch.full((2, 1), 50.0, dtype=D))
    assert (planted.argmax(-1) == 0).all()  # a key equal to a row gets the weight
    d_weights = torch.randn(2, 3, 6, generator=g, dtype=D)
    got = fused.content_backward(d_weights, weights, keys, strength, memory_unit)
    want = _grads_by_autograd(fused.content_weights, (keys, memory_unit, strength), (d_weights,))
    for a, b in zip(got, (want[0], want[2], want[1])):
        torch.testing.assert_close(a, b)


def test_softmax_backward_matches_autograd():
    logits, dy = torch.randn(3, 7, generator=_gen(2), dtype=D), torch.randn(3, 7, generator=_gen(3), dtype=D)
    want = _grads_by_autograd(lambda z: torch.softmax(z, -1), (logits,), (dy,))[0]
    torch.testing.assert_close(fused.softmax_backward(dy, torch.softmax(logits, -1)), want)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_product_of_others_matches_a_loop_and_is_safe_with_zeros(n):
    x = torch.rand(2, n, 3, generator=_gen(4), dtype=D)
    x[0, 0, 1] = 0  # a zero factor: dividing the full product by it would give 0/0
    got = fused.product_of_others(x, 1)
    for k in range(n):
        want = torch.ones(2, 3, dtype=D)
        for j in range(n):
            if j != k:
                want = want * x[:, j]
        torch.testing.assert_close(got[:, k], want)
