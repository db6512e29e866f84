import pytest
import torch
import torch.nn.functional as F

from attnlab.memory.bags import weighted_bags


def gathered(tokens, weights, tables):
    """The sum by its definition: every word's row of every part's table, weighted and summed."""
    rows = torch.stack([F.embedding(tokens, t) for t in tables], -3)  # (..., p, s, d)
    return (weights[..., None] * rows).sum((-3, -2))  # (..., d)


def example(seed=0, lead=(3, 4), s=5, p=2, vocab=9, d=3):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (*lead, s), generator=gen)  # (..., s), 0 = padding
    weights = torch.randn(*lead, p, s, generator=gen, dtype=torch.float64) * (tokens != 0)[..., None, :].double()
    tables = torch.randn(p, vocab, d, generator=gen, dtype=torch.float64, requires_grad=True)  # (p, V, d)
    return tokens, weights, tables


def test_sums_and_gradients_equal_the_gathered_definition():
    tokens, weights, tables = example()
    tokens[0, 0] = 0  # a sentence with no word
    weights = weights * (tokens != 0)[..., None, :]
    got, want = weighted_bags(tokens, weights, tables), gathered(tokens, weights, tables)
    torch.testing.assert_close(got, want)
    assert torch.equal(got[0, 0], torch.zeros(3, dtype=torch.float64))
    dout = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad(got, tables, dout)[0], torch.autograd.grad(want, tables, dout)[0])


def test_gradcheck():
    tokens, weights, tables = example(seed=1, lead=(4,), p=1)
    assert torch.autograd.gradcheck(lambda t: weighted_bags(tokens, weights, t), (tables,))


def test_padding_weights_are_never_read():
    tokens, weights, tables = example(seed=2)
    noisy = weights + (tokens == 0)[..., None, :].double() * 100.0  # weights on padding must not matter
    torch.testing.assert_close(weighted_bags(tokens, noisy, tables), weighted_bags(tokens, weights, tables))


@pytest.mark.parametrize("in_dims", [(0, 0, 0), (None, None, 0), (0, 0, None)])
def test_under_vmap_k_stacked_calls_equal_k_separate_calls(in_dims):
    k = 3
    examples = [example(seed=s) for s in range(k)]
    tokens, weights, tables = (torch.stack([e[i] for e in examples]) for i in range(3))
    tables = tables.detach().requires_grad_()
    args = [x if dim == 0 else x[0] for x, dim in zip((tokens, weights, tables), in_dims, strict=True)]
    got = torch.vmap(weighted_bags, in_dims=in_dims)(*args)  # (K, 3, 4, d)
    want = torch.stack([gathered(*(a[i] if dim == 0 else a for a, dim in zip(args, in_dims, strict=True)))
                        for i in range(k)])  # fmt: skip
    torch.testing.assert_close(got, want)
    dout = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad(got, args[2], dout)[0], torch.autograd.grad(want, args[2], dout)[0])


def test_bad_weights_are_refused_in_one_line():
    tokens, weights, tables = example()
    with pytest.raises(ValueError, match="no gradient"):
        weighted_bags(tokens, weights.requires_grad_(), tables)
    with pytest.raises(ValueError, match="do not fit"):
        weighted_bags(tokens, weights.detach()[..., :1, :], tables)
