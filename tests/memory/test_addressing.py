import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.memory.addressing import (
    allocation,
    content_weights,
    directional_weights,
    erase_and_add,
    interpolate,
    link_update,
    precedence_update,
    read_weighting,
    sharpen,
    shift,
    usage_update,
    write_weighting,
)


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
        plus, minus, stay = (
            torch.tensor([[[0.0, 0.0, 1.0]]]),
            torch.tensor([[[1.0, 0.0, 0.0]]]),
            torch.tensor([[[0.0, 1.0, 0.0]]]),
        )
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


# ---- the DNC: usage, allocation, write weighting, memory write, links, read weighting ---------

D = torch.float64


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def _simplex_rows(*shape, seed=0):
    """Non-negative rows summing to less than one, like a weighting."""
    w = _rand(*shape, seed=seed)
    return 0.9 * w / w.sum(-1, keepdim=True)


# ---- naive loops: the Methods equations written out element by element ----------------------


def naive_usage(u, ww, wr, f):
    out = torch.empty_like(u)
    for b in range(u.shape[0]):
        for n in range(u.shape[1]):
            psi = 1.0
            for r in range(wr.shape[1]):
                psi *= 1 - f[b, r] * wr[b, r, n]
            out[b, n] = (u[b, n] + ww[b, n] - u[b, n] * ww[b, n]) * psi
    return out


def naive_allocation(u):
    out = torch.zeros_like(u)
    for b in range(u.shape[0]):
        values = u[b].tolist()
        order = sorted(range(len(values)), key=lambda n: (values[n], n))  # ties: lower index first
        product = 1.0
        for n in order:
            out[b, n] = (1 - values[n]) * product
            product *= values[n]
    return out


def naive_link(link, p_prev, ww):
    out = torch.zeros_like(link)
    B, N = ww.shape
    for b in range(B):
        for i in range(N):
            for j in range(N):
                if i != j:
                    out[b, i, j] = (1 - ww[b, i] - ww[b, j]) * link[b, i, j] + ww[b, i] * p_prev[b, j]
    return out


def naive_directional(link, wr):
    fwd, bwd = torch.zeros_like(wr), torch.zeros_like(wr)
    B, R, N = wr.shape
    for b in range(B):
        for r in range(R):
            for i in range(N):
                for j in range(N):
                    fwd[b, r, i] += link[b, i, j] * wr[b, r, j]
                    bwd[b, r, j] += link[b, i, j] * wr[b, r, i]
    return fwd, bwd


# ---- pure functions against the loops ----------------------------------------------------------


def test_usage_update_matches_a_loop():
    u, ww, wr, f = _rand(2, 5, seed=1), _simplex_rows(2, 5, seed=2), _simplex_rows(2, 3, 5, seed=3), _rand(2, 3, seed=4)
    torch.testing.assert_close(usage_update(u, ww, wr, f), naive_usage(u, ww, wr, f))


def test_allocation_matches_a_loop():
    u = _rand(3, 7, seed=5)
    torch.testing.assert_close(allocation(u), naive_allocation(u))


def test_allocation_on_hand_made_usage():
    a = allocation(torch.tensor([[0.1, 0.9, 0.0, 0.5]], dtype=D))
    assert a[0].argmax().item() == 2
    torch.testing.assert_close(a, naive_allocation(torch.tensor([[0.1, 0.9, 0.0, 0.5]], dtype=D)))
    a = allocation(torch.tensor([[0.1, 0.9, 0.2, 0.5]], dtype=D))
    assert a[0].argsort(descending=True).tolist() == [0, 2, 3, 1]  # the least used slot first


def test_allocation_ties_are_broken_by_index_and_full_memory_allocates_nothing():
    zeros = torch.zeros(2, 6, dtype=D, requires_grad=True)
    a = allocation(zeros)
    assert a.tolist() == [[1.0, 0, 0, 0, 0, 0]] * 2
    # many ties in a long row, where an unstable sort may reorder equal values
    levels = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=D)
    u = levels[torch.randint(0, 4, (3, 200), generator=torch.Generator().manual_seed(6))]
    torch.testing.assert_close(allocation(u), naive_allocation(u))
    torch.testing.assert_close(allocation(u), allocation(u.clone()))
    ones = torch.ones(2, 6, dtype=D, requires_grad=True)
    full = allocation(ones)
    assert (full == 0).all()
    (a.sum() + full.sum()).backward()
    assert torch.isfinite(zeros.grad).all() and torch.isfinite(ones.grad).all()


def test_write_weighting_and_erase_and_add_match_a_loop():
    c, a = _simplex_rows(2, 5, seed=7), _simplex_rows(2, 5, seed=8)
    ga, gw = _rand(2, seed=9), _rand(2, seed=10)
    memory, erase, add = _rand(2, 5, 3, seed=11) - 0.5, _rand(2, 3, seed=12), _rand(2, 3, seed=13) - 0.5
    want_w, want_m = torch.empty(2, 5, dtype=D), torch.empty(2, 5, 3, dtype=D)
    for b in range(2):
        for n in range(5):
            want_w[b, n] = gw[b] * (ga[b] * a[b, n] + (1 - ga[b]) * c[b, n])
            for k in range(3):
                want_m[b, n, k] = memory[b, n, k] * (1 - want_w[b, n] * erase[b, k]) + want_w[b, n] * add[b, k]
    w = write_weighting(c, a, ga, gw)
    torch.testing.assert_close(w, want_w)
    torch.testing.assert_close(erase_and_add(memory, w, erase, add), want_m)


def test_precedence_link_and_directional_weights_match_a_loop():
    p, ww = _simplex_rows(2, 5, seed=14), _simplex_rows(2, 5, seed=15)
    link = _rand(2, 5, 5, seed=16) / 5
    want_p = torch.empty_like(p)
    for b in range(2):
        for n in range(5):
            want_p[b, n] = (1 - sum(ww[b].tolist())) * p[b, n] + ww[b, n]
    torch.testing.assert_close(precedence_update(p, ww), want_p)
    new = link_update(link, p, ww)
    torch.testing.assert_close(new, naive_link(link, p, ww))
    wr = _simplex_rows(2, 3, 5, seed=17)
    for got, want in zip(directional_weights(new, wr), naive_directional(new, wr)):
        torch.testing.assert_close(got, want)


def test_read_weighting_matches_a_loop():
    modes = torch.softmax(_rand(2, 3, 3, seed=18), -1)
    bwd, c, fwd = _simplex_rows(2, 3, 5, seed=19), _simplex_rows(2, 3, 5, seed=20), _simplex_rows(2, 3, 5, seed=21)
    want = torch.empty_like(c)
    for b in range(2):
        for r in range(3):
            for n in range(5):
                pi = modes[b, r]
                want[b, r, n] = pi[0] * bwd[b, r, n] + pi[1] * c[b, r, n] + pi[2] * fwd[b, r, n]
    torch.testing.assert_close(read_weighting(modes, bwd, c, fwd), want)


# ---- planted answers ---------------------------------------------------------------------------


def test_link_matrix_follows_a_planted_write_sequence():
    N = 5
    link, p = torch.zeros(1, N, N, dtype=D), torch.zeros(1, N, dtype=D)
    for slot in (3, 0, 2):
        w = F.one_hot(torch.tensor([slot]), N).to(D)  # (1, N)
        link, p = link_update(link, p, w), precedence_update(p, w)
    assert link[0, 0, 3] == 1 and link[0, 2, 0] == 1
    assert link.sum() == 2 and (link[0].diagonal() == 0).all()
    read = F.one_hot(torch.tensor([[3]]), N).to(D)  # (1, 1, N) reading slot 3
    hops = []
    for _ in range(2):
        read, _ = directional_weights(link, read)
        hops.append(read[0, 0].argmax().item())
        assert read[0, 0].max() == 1
    assert hops == [0, 2]
    read = F.one_hot(torch.tensor([[2]]), N).to(D)
    hops = []
    for _ in range(2):
        _, read = directional_weights(link, read)
        hops.append(read[0, 0].argmax().item())
    assert hops == [0, 3]


def test_content_addressing_reads_back_a_planted_write():
    torch.manual_seed(0)
    memory, v = torch.randn(1, 6, 8, dtype=D), torch.randn(1, 8, dtype=D)
    w = F.one_hot(torch.tensor([4]), 6).to(D)  # (1, 6) write slot 4 only
    memory = erase_and_add(memory, w, torch.ones(1, 8, dtype=D), v)
    weights = content_weights(v[:, None], memory, torch.tensor([[100.0]], dtype=D))  # (1, 1, 6)
    assert weights[0, 0].argmax().item() == 4 and weights[0, 0, 4] > 0.99
    torch.testing.assert_close(weights @ memory, v[:, None], atol=1e-3, rtol=0)


# ---- gradients ---------------------------------------------------------------------------------


def test_gradcheck_dnc_functions():
    u = (0.1 + 0.8 * _rand(2, 5, seed=22)).requires_grad_()  # distinct usages: no ties in the sort
    ww, wr = _simplex_rows(2, 5, seed=23).requires_grad_(), _simplex_rows(2, 3, 5, seed=24).requires_grad_()
    f = _rand(2, 3, seed=25).requires_grad_()
    assert torch.autograd.gradcheck(usage_update, (u, ww, wr, f))
    assert torch.autograd.gradcheck(allocation, (u,))
    link, p = (_rand(2, 5, 5, seed=26) / 5).requires_grad_(), _simplex_rows(2, 5, seed=27).requires_grad_()
    assert torch.autograd.gradcheck(link_update, (link, p, ww))
