import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from attnlab.core import capture
from attnlab.memory.addressing import content_weights
from attnlab.memory.dnc import (
    DNC,
    DNCConfig,
    DNCState,
    allocation,
    directional_weights,
    erase_and_add,
    link_update,
    precedence_update,
    read_weighting,
    usage_update,
    write_weighting,
)

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


def test_gradcheck_pure_functions():
    u = (0.1 + 0.8 * _rand(2, 5, seed=22)).requires_grad_()  # distinct usages: no ties in the sort
    ww, wr = _simplex_rows(2, 5, seed=23).requires_grad_(), _simplex_rows(2, 3, 5, seed=24).requires_grad_()
    f = _rand(2, 3, seed=25).requires_grad_()
    assert gradcheck(usage_update, (u, ww, wr, f))
    assert gradcheck(allocation, (u,))
    link, p = (_rand(2, 5, 5, seed=26) / 5).requires_grad_(), _simplex_rows(2, 5, seed=27).requires_grad_()
    assert gradcheck(link_update, (link, p, ww))


def _tiny(seed=0, dtype=torch.float32, input_size=3, output_size=2, **sizes):
    torch.manual_seed(seed)
    cfg = {"controller_size": 4, "memory_size": 5, "word_size": 3, "num_reads": 2}
    return DNC(DNCConfig(**{**cfg, **sizes}), input_size, output_size).to(dtype)


def test_gradcheck_one_step_of_a_tiny_dnc():
    model = _tiny(dtype=D)
    state = model.initial_state(2)
    with torch.no_grad():
        for _ in range(3):  # a lived-in state: memory, links and usage non-zero and usages distinct
            _, state = model.step(torch.randn(2, 3, dtype=D), state)
    flat = [t.clone().requires_grad_() for t in (*state[:7], *state.controller)]
    x = torch.randn(2, 3, dtype=D, requires_grad=True)

    def one_step(x, *tensors):
        y, new = model.step(x, DNCState(*tensors[:7], tensors[7:]))
        return (y, *new[:7], *new.controller)

    assert gradcheck(one_step, (x, *flat))


# ---- training ----------------------------------------------------------------------------------


def copy_episodes(*, batch: int, length: int, gen: torch.Generator):
    """Bit-copy episodes: `length` random 8-bit vectors, a delimiter step, then `length` answer steps.

    Returns x (b, 2 length + 1, 9), the answer bits (b, length, 8).
    """
    target = torch.randint(0, 2, (batch, length, 8), generator=gen).float()
    x = torch.zeros(batch, 2 * length + 1, 9)
    x[:, :length, :8] = target
    x[:, length, 8] = 1  # the delimiter channel
    return x, target


def unroll(model, x):
    state = model.initial_state(x.shape[0])
    outputs = []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        outputs.append(y)
    return torch.stack(outputs, 1), state


def copy_loss(model, x, target):
    length = target.shape[1]
    logits, state = unroll(model, x)
    answer = logits[:, length + 1 :]  # (b, length, 8) the answer steps
    return F.binary_cross_entropy_with_logits(answer, target), answer, state


def _finite_state(state):
    return all(torch.isfinite(t).all() for t in (*state[:7], *state.controller))


def test_300_adam_steps_on_bit_copy_stay_finite():
    torch.manual_seed(0)
    model = DNC(DNCConfig(controller_size=32, memory_size=16, word_size=8, num_reads=2), 9, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # a large rate, to stress the gates and the sort
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        length = int(torch.randint(1, 6, (1,), generator=gen))
        x, target = copy_episodes(batch=8, length=length, gen=gen)
        loss, _, state = copy_loss(model, x, target)
        opt.zero_grad()
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        assert _finite_state(state)
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_overfits_four_copy_episodes():
    torch.manual_seed(0)
    model = DNC(DNCConfig(controller_size=32, memory_size=8, word_size=8, num_reads=1), 9, 8)
    x, target = copy_episodes(batch=4, length=3, gen=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # chance is log 2 = 0.69 per bit; 0.05 is a mean probability of about 0.95 on the right bit
    threshold = 0.05
    for _ in range(400):  # about 100 steps are enough with these seeds
        loss, answer, _ = copy_loss(model, x, target)
        if loss.item() < threshold and ((answer > 0).float() == target).all():
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < threshold < math.log(2)
    assert ((answer > 0).float() == target).all()


# ---- the module --------------------------------------------------------------------------------


def test_forward_equals_stepping_and_traces_have_the_documented_shapes():
    model = _tiny(input_size=4, output_size=3, memory_size=6, num_reads=2)
    x = torch.randn(2, 5, 4)
    by_hand, _ = unroll(model, x)
    plain = model(x)
    torch.testing.assert_close(plain, by_hand, rtol=0, atol=0)
    with capture(model) as trace:
        traced = model(x)
    torch.testing.assert_close(traced, plain, rtol=0, atol=0)
    reads, writes = trace.select(kind="read"), trace.select(kind="write")
    assert len(reads) == len(writes) == 5 and [r.kind for r in trace][:4] == ["write", "read"] * 2
    for r, w in zip(reads, writes):
        assert r.weights.shape == (2, 2, 1, 6) and r.extra["modes"].shape == (2, 2, 3)
        assert w.weights.shape == (2, 1, 1, 6) and w.extra["allocation_gate"].shape == (2,)
        assert (r.weights >= 0).all() and (r.weights.sum(-1) <= 1 + 1e-5).all()
        assert (w.weights >= 0).all() and (w.weights.sum(-1) <= 1 + 1e-5).all()
        torch.testing.assert_close(r.extra["modes"].sum(-1), torch.ones(2, 2))


def test_initial_state_is_empty_and_config_is_checked():
    model = _tiny()
    state = model.initial_state(3)
    assert state.memory.shape == (3, 5, 3) and state.link.shape == (3, 5, 5) and state.reads.shape == (3, 2, 3)
    assert all((t == 0).all() for t in (*state[:7], *state.controller))
    with pytest.raises(ValueError, match="num_writes must be 1"):
        DNCConfig(num_writes=2)
    with pytest.raises(ValueError, match="memory_size must be >= 1"):
        DNCConfig(memory_size=0)
    with pytest.raises(ValueError, match="output_size must be >= 1, got 0"):
        DNC(DNCConfig(), 3, 0)
    assert (model.input_size, model.output_size, model.output.out_features) == (3, 2, 2)
    with pytest.raises(ValueError, match="x must have shape"):
        model.step(torch.zeros(3, 4), state)
