import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.core import causal_mask, combine_masks, from_torch_mask, key_mask, padding_mask


def test_padding_mask_from_lengths():
    m = padding_mask(torch.tensor([3, 1, 0]), 4)
    assert m.shape == (3, 1, 1, 4) and m.dtype == torch.bool
    assert m[:, 0, 0].tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]
    assert padding_mask(torch.tensor([2, 5])).shape == (2, 1, 1, 5)


def test_padding_mask_rejects_float_lengths():
    with pytest.raises(ValueError, match="lengths must be a 1-D integer tensor"):
        padding_mask(torch.tensor([2.0, 3.0]))


@given(i=st.integers(1, 8), extra=st.integers(0, 8))
def test_causal_mask_matches_definition(i, extra):
    j = i + extra
    m = causal_mask(i, j)
    for r in range(i):
        for c in range(j):
            assert bool(m[r, c]) == (c <= r + extra)
    assert m[-1].all()  # the last query sees every key


def test_causal_mask_square_and_offset():
    assert torch.equal(causal_mask(3), torch.tril(torch.ones(3, 3, dtype=torch.bool)))
    assert causal_mask(1, 4, offset=1).tolist() == [[True, True, False, False]]


def test_combine_masks_ands_and_broadcasts():
    assert combine_masks(None, None) is None
    p = padding_mask(torch.tensor([2, 3]), 3)
    c = causal_mask(3)
    m = combine_masks(p, None, c)
    assert m.shape == (2, 1, 3, 3)
    assert torch.equal(m, p & c)


def test_from_torch_mask_flips_polarity():
    torch_mask = torch.tensor([[False, True], [True, False]])  # True = masked out there
    assert from_torch_mask(torch_mask).tolist() == [[True, False], [False, True]]
    additive = torch.tensor([[0.0, float("-inf")]])
    assert from_torch_mask(additive).tolist() == [[True, False]]
    assert from_torch_mask(None) is None
    with pytest.raises(ValueError, match="is a bias"):
        from_torch_mask(torch.tensor([[0.0, -2.0]]))


def test_key_mask_lifts_and_checks():
    keep = torch.tensor([[True, False, True]])
    assert key_mask(keep).shape == (1, 1, 1, 3)
    with pytest.raises(ValueError, match=r"keep must be a bool tensor \(b, j\)"):
        key_mask(torch.ones(3))
