import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.memory.addressing import content_weights, interpolate, sharpen, shift


def naive_content(keys, memory, strength, eps=1e-6):
    b, r, _ = keys.shape
    n = memory.shape[1]
    out = torch.zeros(b, r, n, dtype=keys.dtype)
    for bi in range(b):
        for h in range(r):
            k = keys[bi, h]
            scores = []
            for i in range(n):
                m = memory[bi, i]
                cos = (k * m).sum() / (math.sqrt((k * k).sum() + eps**2) * math.sqrt((m * m).sum() + eps**2))
                scores.append(strength[bi, h] * cos)
            exps = [math.exp(s) for s in scores]
            for i in range(n):
                out[bi, h, i] = exps[i] / sum(exps)
    return out


def naive_shift(weights, shift_weights):
    b, r, n = weights.shape
    s = shift_weights.shape[-1] // 2
    out = torch.zeros_like(weights)
    for bi in range(b):
        for h in range(r):
            for i in range(n):
                for j in range(n):  # eq. 8: w~_i = sum_j w_j s(i - j), i - j taken mod n
                    for k in range(2 * s + 1):
                        if (i - j - (k - s)) % n == 0:
                            out[bi, h, i] += weights[bi, h, j] * shift_weights[bi, h, k]
    return out


def random_weighting(*shape, dtype=torch.float32):
    return torch.softmax(torch.randn(*shape, dtype=dtype) * 2, -1)


def test_content_weights_match_cosine_and_softmax_by_hand():
    torch.manual_seed(0)
    keys, memory = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 7, 5, dtype=torch.float64)
    strength = torch.rand(2, 3, dtype=torch.float64) * 4
    got = content_weights(keys, memory, strength)
    assert got.shape == (2, 3, 7)
    torch.testing.assert_close(got, naive_content(keys, memory, strength))


def test_content_addressing_finds_the_planted_row():
    torch.manual_seed(0)
    memory = torch.randn(2, 10, 6)
    planted = torch.tensor([[3, 7], [0, 9]])  # (b, r) the slot whose row each key copies
    keys = torch.stack([memory[b, planted[b]] for b in range(2)])  # (2, 2, 6)
    weights = content_weights(keys, memory, torch.full((2, 2), 100.0))
    assert torch.equal(weights.argmax(-1), planted)
    assert (weights.amax(-1) > 0.99).all()


def test_interpolate_matches_a_loop():
    torch.manual_seed(0)
    content, previous, gate = random_weighting(2, 3, 5), random_weighting(2, 3, 5), torch.rand(2, 3)
    want = torch.zeros(2, 3, 5)
    for b in range(2):
        for h in range(3):
            for i in range(5):
                want[b, h, i] = gate[b, h] * content[b, h, i] + (1 - gate[b, h]) * previous[b, h, i]
    torch.testing.assert_close(interpolate(content, previous, gate), want)
    torch.testing.assert_close(interpolate(content, previous, torch.ones(2, 3)), content)
    torch.testing.assert_close(interpolate(content, previous, torch.zeros(2, 3)), previous)


@pytest.mark.parametrize("n, s", [(6, 0), (6, 1), (6, 2), (3, 4), (1, 1)])  # s > n wraps more than once
def test_shift_matches_a_loop(n, s):
    torch.manual_seed(s)
    weights, shift_weights = random_weighting(2, 3, n), random_weighting(2, 3, 2 * s + 1)
    got = shift(weights, shift_weights)
    torch.testing.assert_close(got, naive_shift(weights, shift_weights))
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 3))


def test_shift_moves_one_hot_weightings_and_wraps_around():
    n = 5
    for i in range(n):
        one_hot = F.one_hot(torch.tensor([[i]]), n).float()  # (1, 1, n)
        plus, minus, stay = (torch.tensor([[[0.0, 0.0, 1.0]]]), torch.tensor([[[1.0, 0.0, 0.0]]]),
                             torch.tensor([[[0.0, 1.0, 0.0]]]))
        assert shift(one_hot, plus).argmax().item() == (i + 1) % n
        assert shift(one_hot, minus).argmax().item() == (i - 1) % n
        assert torch.equal(shift(one_hot, stay), one_hot)
    last = F.one_hot(torch.tensor([[n - 1]]), n).float()
    assert shift(last, torch.tensor([[[0.0, 0.0, 1.0]]])).tolist() == [[[1.0, 0.0, 0.0, 0.0, 0.0]]]
    # a split shift splits the weight
    half = shift(F.one_hot(torch.tensor([[0]]), n).float(), torch.tensor([[[0.5, 0.0, 0.5]]]))
    assert half.tolist() == [[[0.0, 0.5, 0.0, 0.0, 0.5]]]


def test_shift_rejects_an_even_number_of_shifts():
    with pytest.raises(ValueError, match=r"^shift_weights must have an odd last dim"):
        shift(torch.rand(1, 1, 4), torch.rand(1, 1, 2))


def test_sharpen_matches_a_loop_and_hand_made_weightings():
    torch.manual_seed(0)
    weights, gamma = random_weighting(2, 3, 6, dtype=torch.float64), 1 + torch.rand(2, 3, dtype=torch.float64) * 3
    want = torch.zeros_like(weights)
    for b in range(2):
        for h in range(3):
            total = sum(weights[b, h, j] ** gamma[b, h] for j in range(6))
            for i in range(6):
                want[b, h, i] = weights[b, h, i] ** gamma[b, h] / total
    torch.testing.assert_close(sharpen(weights, gamma), want)
    hand = torch.tensor([[[0.1, 0.2, 0.4, 0.3]]])
    torch.testing.assert_close(sharpen(hand, torch.ones(1, 1)), hand)
    squared = torch.tensor([0.01, 0.04, 0.16, 0.09]) / 0.30
    torch.testing.assert_close(sharpen(hand, torch.full((1, 1), 2.0))[0, 0], squared)
    sharp = sharpen(hand, torch.full((1, 1), 50.0))
    assert sharp.argmax().item() == 2 and sharp[0, 0, 2] > 0.999


def test_sharpen_is_safe_for_zero_and_tiny_weights():
    weights = torch.zeros(2, 2, 5)
    weights[1] = torch.tensor([1e-30, 2e-30, 0.0, 1e-35, 3e-30])
    weights.requires_grad_(True)
    gamma = torch.tensor([[1.0, 30.0], [1.0, 30.0]], requires_grad=True)
    out = sharpen(weights, gamma)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 2))
    torch.testing.assert_close(out[0], torch.full((2, 5), 0.2))  # all-zero rows: uniform
    (out * torch.randn(2, 2, 5)).sum().backward()
    assert torch.isfinite(weights.grad).all() and torch.isfinite(gamma.grad).all()


def test_sharpen_rejects_gamma_below_one():
    with pytest.raises(ValueError, match=r"^gamma must be >= 1"):
        sharpen(torch.rand(1, 2, 4), torch.tensor([[1.0, 0.5]]))


def test_zero_memory_and_zero_keys_give_finite_uniform_weights_and_gradients():
    memory = torch.zeros(2, 6, 4, requires_grad=True)
    keys = torch.zeros(2, 3, 4, requires_grad=True)
    strength = torch.full((2, 3), 5.0, requires_grad=True)
    weights = content_weights(keys, memory, strength)
    torch.testing.assert_close(weights, torch.full((2, 3, 6), 1 / 6))
    (weights * torch.randn(2, 3, 6)).sum().backward()
    for t in (memory, keys, strength):
        assert torch.isfinite(t.grad).all()
    nonzero = content_weights(torch.randn(2, 3, 4), torch.zeros(2, 6, 4), strength.detach())
    torch.testing.assert_close(nonzero, torch.full((2, 3, 6), 1 / 6))


def test_gradcheck_float64():
    torch.manual_seed(0)
    f64 = {"dtype": torch.float64, "requires_grad": True}
    keys, memory = torch.randn(2, 2, 4, **f64), torch.randn(2, 5, 4, **f64)
    strength = (torch.rand(2, 2, dtype=torch.float64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(content_weights, (keys, memory, strength))
    content = random_weighting(2, 2, 5, dtype=torch.float64).requires_grad_()
    previous = random_weighting(2, 2, 5, dtype=torch.float64).requires_grad_()
    gate = torch.rand(2, 2, **f64)
    assert torch.autograd.gradcheck(interpolate, (content, previous, gate))
    shift_weights = random_weighting(2, 2, 3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(shift, (content, shift_weights))
    gamma = (1 + torch.rand(2, 2, dtype=torch.float64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(sharpen, (content, gamma))
