import pytest
import torch

from attnlab.memory import fused
from attnlab.memory.addressing import shift
from attnlab.memory.ntm import NTM, NTMConfig
from attnlab.memory.ntm_steps import address_backward, address_forward, circular_shift


@pytest.mark.parametrize("s, n", [(0, 6), (1, 6), (2, 6), (7, 5)])
def test_circular_shift_equals_the_readable_shift(s, n):
    g = torch.Generator().manual_seed(s)
    w = torch.softmax(torch.randn(3, 2, n, generator=g), -1)
    shifts = torch.softmax(torch.randn(3, 2, 2 * s + 1, generator=g), -1)
    torch.testing.assert_close(circular_shift(w, shifts), shift(w, shifts))


def test_fused_addressing_equals_the_readable_one_and_its_backward_autograd():
    torch.manual_seed(0)
    config = NTMConfig(controller_size=24, memory_size=7, word_size=5, num_reads=2, shift_range=2)
    model = NTM(config, 3, 2).double()  # its `_address` is the readable addressing (eq. 5-9)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(3, 2, model.read_size, generator=g, dtype=torch.float64)
    memory = torch.randn(3, 7, 5, generator=g, dtype=torch.float64)
    memory[0, 3] = 0  # an empty slot
    previous = torch.softmax(torch.randn(3, 2, 7, generator=g, dtype=torch.float64), -1)
    memory_unit = fused.unit_rows(memory)[0]
    address = address_forward(params, memory_unit, previous, 5, 2)
    torch.testing.assert_close(address.weights, model._address(params, memory, previous))
    d_weights = torch.randn(3, 2, 7, generator=g, dtype=torch.float64)
    got = address_backward(d_weights, address, memory_unit, 2)
    leaves = [t.clone().requires_grad_() for t in (params, memory_unit, previous)]
    address_forward(leaves[0], leaves[1], leaves[2], 5, 2).weights.backward(d_weights)
    for a, b in zip(got, leaves, strict=True):
        torch.testing.assert_close(a, b.grad)
