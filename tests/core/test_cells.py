"""The cell updates against nn.LSTMCell and nn.GRUCell: outputs and gradients (to every weight,
the input and the state), the first LSTM step without a cell, and gradcheck in float64."""

import pytest
import torch
from torch import nn

from attnlab.core.cells import gru_update, lstm_update

B, IN, H = 3, 5, 4


@pytest.fixture
def inputs():
    torch.manual_seed(0)
    x = torch.randn(B, IN, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    return x, h, c


def grads(outputs, tensors):
    """d(sum of outputs . fixed random weights)/d(each tensor): a loss that reads every element."""
    torch.manual_seed(1)
    loss = sum((out * torch.randn_like(out)).sum() for out in outputs)
    return torch.autograd.grad(loss, tensors)


def test_lstm_update_equals_lstm_cell_in_values_and_gradients(inputs):
    x, h, c = inputs
    cell = nn.LSTMCell(IN, H).double()
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    expected = cell(x, (h, c))
    gates = x @ cell.weight_ih.t() + cell.bias_ih + h @ cell.weight_hh.t() + cell.bias_hh  # (b, 4H)
    got = lstm_update(gates, c)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    for g, e in zip(grads(got, [x, h, c, *params]), grads(expected, [x, h, c, *params])):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)


def test_lstm_update_without_a_cell_is_the_step_from_a_zero_cell(inputs):
    x, h, _ = inputs
    cell = nn.LSTMCell(IN, H).double()
    zero = torch.zeros(B, H, dtype=torch.float64)
    gates = x @ cell.weight_ih.t() + cell.bias_ih + h @ cell.weight_hh.t() + cell.bias_hh  # (b, 4H)
    got = lstm_update(gates, None)
    torch.testing.assert_close(got, cell(x, (h, zero)), rtol=0, atol=1e-12)
    torch.testing.assert_close(got, lstm_update(gates, zero), rtol=0, atol=0)
    for g, e in zip(grads(got, [x, h]), grads(cell(x, (h, zero)), [x, h])):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)


def test_gru_update_equals_gru_cell_in_values_and_gradients(inputs):
    x, h, _ = inputs
    cell = nn.GRUCell(IN, H).double()
    params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    expected = cell(x, h)
    got = gru_update(x @ cell.weight_ih.t() + cell.bias_ih, h @ cell.weight_hh.t() + cell.bias_hh, h)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    for g, e in zip(grads([got], [x, h, *params]), grads([expected], [x, h, *params])):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)


def test_gradcheck(inputs):
    _, h, c = inputs
    torch.manual_seed(2)
    gates = torch.randn(B, 4 * H, dtype=torch.float64, requires_grad=True)
    x_gates, h_gates = (torch.randn(B, 3 * H, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda g, cell: lstm_update(g, cell), (gates, c))
    assert torch.autograd.gradcheck(lambda g: lstm_update(g, None), (gates,))
    assert torch.autograd.gradcheck(gru_update, (x_gates, h_gates, h))
