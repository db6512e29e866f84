import pytest
import torch

from attnlab.memory.addressing import allocation, sorted_allocation
from attnlab.memory.dnc_steps import allocation_backward

D = torch.float64


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_allocation_backward_matches_autograd_with_zero_tied_and_full_usages(n):
    usage = _rand(3, n, seed=5)
    usage[0, : (n + 1) // 2] = 0  # a free prefix: dividing by usages would give 0/0
    usage[1, 0] = usage[1, -1]  # a tie
    usage[2] = 1  # full memory
    d_alloc = torch.randn(3, n, generator=torch.Generator().manual_seed(6), dtype=D)
    leaf = usage.clone().requires_grad_()
    allocation(leaf).backward(d_alloc)
    alloc, *parts = sorted_allocation(usage)
    torch.testing.assert_close(alloc, allocation(usage))
    torch.testing.assert_close(allocation_backward(d_alloc, *parts), leaf.grad)
