import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.core.fast import set_path, why_not_compiled
from attnlab.memory.addressing import content_weights
from attnlab.memory.ntm import NTM, NTMConfig, NTMState
from batches import assert_close_relative, assert_compiled_once, path_outputs_and_grads

BITS = 8


def copy_episodes(batch, min_len, max_len, seed):
    """Bit-copy episodes: L random 8-bit vectors, a delimiter step, then L steps that ask for them back.

    Returns inputs (b, t, 9) with channel 8 the delimiter, targets (b, t, 8) and the answer mask
    (b, t) bool, t = 2 L + 1 for the longest episode; steps after an episode's answer are zero and masked out.
    """
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (batch,), generator=gen)
    t = 2 * int(lengths.max()) + 1
    inputs, targets = torch.zeros(batch, t, BITS + 1), torch.zeros(batch, t, BITS)
    mask = torch.zeros(batch, t, dtype=torch.bool)
    for b, n in enumerate(lengths.tolist()):
        bits = torch.randint(0, 2, (n, BITS), generator=gen).float()
        inputs[b, :n, :BITS] = bits
        inputs[b, n, BITS] = 1.0
        targets[b, n + 1 : 2 * n + 1] = bits
        mask[b, n + 1 : 2 * n + 1] = True
    return inputs, targets, mask


def copy_loss(model, inputs, targets, mask):
    logits = model(inputs)  # (b, t, 8)
    return F.binary_cross_entropy_with_logits(logits[mask], targets[mask]), logits


SIZES = (BITS + 1, BITS)  # input_size, output_size


def tiny(**kw):
    base = {"controller_size": 24, "memory_size": 12, "word_size": 6}
    return NTMConfig(**{**base, **kw})


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_shapes_and_state(controller):
    torch.manual_seed(0)
    cfg = tiny(controller=controller, num_reads=2, num_writes=3, shift_range=2)
    model = NTM(cfg, *SIZES)
    state = model.initial_state(4)
    assert state.memory.shape == (4, 12, 6) and not state.memory.any()
    assert state.read_weights.shape == (4, 2, 12) and state.write_weights.shape == (4, 3, 12)
    assert (state.read_weights[..., 0] == 1).all() and state.read_weights.sum().item() == 8
    assert state.reads.shape == (4, 2, 6)
    assert len(state.controller) == (2 if controller == "lstm" else 0)
    y, new = model.step(torch.randn(4, 9), state)
    assert y.shape == (4, 8) and new.memory.shape == (4, 12, 6) and new.reads.shape == (4, 2, 6)
    torch.testing.assert_close(new.read_weights.sum(-1), torch.ones(4, 2))
    torch.testing.assert_close(new.write_weights.sum(-1), torch.ones(4, 3))
    assert model(torch.randn(4, 7, 9)).shape == (4, 7, 8)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_forward_equals_stepping_by_hand(controller):
    torch.manual_seed(0)
    model = NTM(tiny(controller=controller, num_reads=2), *SIZES)
    x = torch.randn(3, 6, 9)
    state = model.initial_state(3)
    steps = []
    for t in range(6):
        y, state = model.step(x[:, t], state)
        steps.append(y)
    torch.testing.assert_close(model(x), torch.stack(steps, 1))
    # from a given state, too
    start = model.initial_state(3)._replace(memory=torch.randn(3, 12, 6))
    y0, _ = model.step(x[:, 0], start)
    torch.testing.assert_close(model(x[:, :1], start)[:, 0], y0)


def naive_address(key, beta, gate, shifts, gamma, memory, previous):
    """One head's weighting by loops over slots (eq. 5-9). All 1-D except memory (n, w)."""
    n = memory.shape[0]
    content = content_weights(key[None, None], memory[None], beta.reshape(1, 1))[0, 0]  # checked in test_addressing
    gated = [gate * content[i] + (1 - gate) * previous[i] for i in range(n)]
    s = len(shifts) // 2
    shifted = [sum(gated[(i - (k - s)) % n] * shifts[k] for k in range(len(shifts))) for i in range(n)]
    powered = [v**gamma for v in shifted]
    return torch.stack([v / sum(powered) for v in powered])


def test_one_step_write_then_read_matches_a_loop_over_slots():
    torch.manual_seed(0)
    cfg = tiny(num_reads=2, num_writes=2, memory_size=5, word_size=4)
    model = NTM(cfg, *SIZES).double()
    b, n, w = 2, 5, 4
    state = NTMState(
        memory=torch.randn(b, n, w, dtype=torch.float64),
        read_weights=torch.softmax(torch.randn(b, 2, n, dtype=torch.float64), -1),
        write_weights=torch.softmax(torch.randn(b, 2, n, dtype=torch.float64), -1),
        reads=torch.randn(b, 2, w, dtype=torch.float64),
        controller=(torch.randn(b, 24, dtype=torch.float64), torch.randn(b, 24, dtype=torch.float64)),
    )
    x = torch.randn(b, 9, dtype=torch.float64)
    y, new = model.step(x, state)

    h, _ = model.controller(torch.cat([x, state.reads.flatten(1)], -1), state.controller)
    params = model.heads(h)
    rs, ws = model.read_size, model.write_size

    def unpack(p, previous, memory):
        key, beta, gate = p[:w], F.softplus(p[w]), torch.sigmoid(p[w + 1])
        shifts, gamma = torch.softmax(p[w + 2 : w + 5], 0), 1 + F.softplus(p[w + 5])
        return naive_address(key, beta, gate, shifts, gamma, memory, previous)

    for bi in range(b):
        memory = state.memory[bi].clone()
        write_params = [params[bi, 2 * rs + hd * ws : 2 * rs + (hd + 1) * ws] for hd in range(2)]
        write_w = [unpack(p, state.write_weights[bi, hd], state.memory[bi]) for hd, p in enumerate(write_params)]
        for hd, p in enumerate(write_params):  # erase by every head, then add by every head
            erase = torch.sigmoid(p[rs : rs + w])
            for i in range(n):
                for k in range(w):
                    memory[i, k] = memory[i, k] * (1 - write_w[hd][i] * erase[k])
        for hd, p in enumerate(write_params):
            add = p[rs + w :]
            for i in range(n):
                for k in range(w):
                    memory[i, k] = memory[i, k] + write_w[hd][i] * add[k]
        torch.testing.assert_close(new.memory[bi], memory)
        for hd in range(2):
            torch.testing.assert_close(new.write_weights[bi, hd], write_w[hd])
            read_w = unpack(params[bi, hd * rs : (hd + 1) * rs], state.read_weights[bi, hd], memory)
            torch.testing.assert_close(new.read_weights[bi, hd], read_w)
            read = torch.stack([sum(read_w[i] * memory[i, k] for i in range(n)) for k in range(w)])
            torch.testing.assert_close(new.reads[bi, hd], read)
        want_y = model.out(torch.cat([h[bi], new.reads[bi].flatten()]))
        torch.testing.assert_close(y[bi], want_y)


def test_a_full_erase_and_add_on_one_slot_replaces_that_row():
    """A planted write: weights one-hot on slot 2, erase 1, add a -> row 2 becomes a, the rest stay."""
    torch.manual_seed(0)
    cfg = tiny(num_reads=1, num_writes=1, memory_size=5, word_size=4, controller="feedforward")
    model = NTM(cfg, *SIZES)
    w, rs = 4, model.read_size
    add = torch.tensor([1.0, -2.0, 3.0, 0.5])
    with torch.no_grad():
        model.heads.weight.zero_()
        bias = torch.zeros(model.heads.out_features)
        write = bias[rs:]
        write[w + 1] = -1e3  # gate g = 0: keep the previous weighting
        write[w + 2 : w + 5] = torch.tensor([-1e3, 1e3, -1e3])  # no shift
        write[rs : rs + w] = 1e3  # erase everything under the weighting
        write[rs + w :] = add
        model.heads.bias.copy_(bias)
    state = model.initial_state(1)
    memory = torch.randn(1, 5, 4)
    previous = torch.zeros(1, 1, 5)
    previous[0, 0, 2] = 1.0
    _, new = model.step(torch.randn(1, 9), state._replace(memory=memory, write_weights=previous))
    want = memory.clone()
    want[0, 2] = add
    torch.testing.assert_close(new.memory, want)


def test_trains_from_zero_memory_without_nan():
    torch.manual_seed(0)
    model = NTM(tiny(memory_size=16, word_size=8, controller_size=32), *SIZES)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        inputs, targets, mask = copy_episodes(4, 1, 5, seed=step)
        loss, _ = copy_loss(model, inputs, targets, mask)
        assert torch.isfinite(loss), f"loss not finite at step {step}"
        opt.zero_grad()
        loss.backward()
        for name, p in model.named_parameters():
            assert torch.isfinite(p.grad).all(), f"gradient of {name} not finite at step {step}"
        opt.step()
    state = model.initial_state(4)
    for t in range(inputs.shape[1]):
        _, state = model.step(inputs[:, t], state)
        assert torch.isfinite(state.memory).all() and torch.isfinite(state.reads).all()
    # 300 steps on random data is also enough to do better than chance (log 2 per bit)
    assert loss.item() < math.log(2)


def test_overfits_four_copy_episodes():
    torch.manual_seed(0)
    model = NTM(tiny(memory_size=8, word_size=8, controller_size=32), *SIZES)
    inputs, targets, mask = copy_episodes(4, 3, 3, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss, logits = copy_loss(model, inputs, targets, mask)
        if loss.item() < 0.02:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss, logits = copy_loss(model, inputs, targets, mask)
    # mean BCE 0.02 means the right bit gets probability >= exp(-0.02 * 96) ~ 0.15 even if one bit
    # carried all the loss; on average exp(-0.02) ~ 0.98 per bit. Bits wrong is the exact check.
    assert loss.item() < 0.02
    wrong = ((logits[mask] > 0).float() != targets[mask]).sum().item()
    assert wrong == 0


def test_traced_read_and_write_weightings():
    torch.manual_seed(0)
    model = NTM(tiny(num_reads=2, num_writes=3), *SIZES)
    x = torch.randn(2, 4, 9)
    plain = model(x)
    with capture(model) as trace:
        traced = model(x)
    torch.testing.assert_close(traced, plain)
    reads, writes = trace.select(kind="read"), trace.select(kind="write")
    assert len(reads) == len(writes) == 4
    assert [r.step for r in reads] == [0, 2, 4, 6]  # read and write share the module's step counter
    for r in reads:
        assert r.weights.shape == (2, 2, 1, 12)
        torch.testing.assert_close(r.weights.sum(-1), torch.ones(2, 2, 1))
    for r in writes:
        assert r.weights.shape == (2, 3, 1, 12)
        torch.testing.assert_close(r.weights.sum(-1), torch.ones(2, 3, 1))


def test_weights_load_into_another_memory_size_and_run_longer_sequences():
    torch.manual_seed(0)
    small = NTM(tiny(memory_size=8), *SIZES)
    big = NTM(tiny(memory_size=40), *SIZES)
    big.load_state_dict(small.state_dict())
    out = big(torch.randn(2, 30, 9))
    assert out.shape == (2, 30, 8) and torch.isfinite(out).all()


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_gradcheck_one_step_float64(controller):
    torch.manual_seed(0)
    model = NTM(
        tiny(controller=controller, controller_size=5, memory_size=4, word_size=3, num_reads=2, num_writes=2), *SIZES
    ).double()
    b, f64 = 2, {"dtype": torch.float64, "requires_grad": True}
    x, memory, reads = torch.randn(b, 9, **f64), torch.randn(b, 4, 3, **f64), torch.randn(b, 2, 3, **f64)
    read_w = torch.softmax(torch.randn(b, 2, 4, dtype=torch.float64), -1).requires_grad_()
    write_w = torch.softmax(torch.randn(b, 2, 4, dtype=torch.float64), -1).requires_grad_()
    hc = (torch.randn(b, 5, **f64), torch.randn(b, 5, **f64)) if controller == "lstm" else ()

    def one_step(x, memory, read_w, write_w, reads, *hc):
        y, new = model.step(x, NTMState(memory, read_w, write_w, reads, tuple(hc)))
        return (y, new.memory, new.read_weights, new.write_weights, new.reads, *new.controller)

    assert torch.autograd.gradcheck(one_step, (x, memory, read_w, write_w, reads, *hc))
    params = dict(model.named_parameters())

    def by_params(*values):
        inputs = (x.detach()[:, None], model.initial_state(b))
        return torch.func.functional_call(model, dict(zip(params, values)), inputs)

    values = tuple(p.detach().requires_grad_() for p in params.values())
    assert torch.autograd.gradcheck(by_params, values, fast_mode=True)  # random projections: hundreds of parameters


@pytest.mark.parametrize(
    "field, value",
    [
        ("controller_size", 0),
        ("memory_size", 0),
        ("word_size", 0),
        ("num_reads", 0),
        ("num_writes", -1),
        ("shift_range", -1),
        ("controller", "gru"),
    ],
)
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        NTMConfig(**{field: value})


@pytest.mark.parametrize("sizes, field", [((0, 2), "input_size"), ((3, 0), "output_size")])
def test_task_sizes_are_checked_by_the_machine(sizes, field):
    with pytest.raises(ValueError, match=f"^{field} must be >= 1, got 0"):
        NTM(NTMConfig(), *sizes)
    model = NTM(NTMConfig(memory_size=4, word_size=3), 3, 2)
    assert (model.input_size, model.output_size) == (3, 2) and model.out.out_features == 2
    with pytest.raises(ValueError, match=r"input_size=3"):
        model(torch.zeros(1, 2, 4))


# ---- the fast and compiled paths ----------------------------------------------------------------


def random_start(model, b, dtype=torch.float32, seed=0):
    """A lived-in start state whose tensors require grad (memory, weightings, reads, controller)."""
    g = torch.Generator().manual_seed(seed)
    cfg, state = model.config, model.initial_state(b, dtype=dtype)

    def leaf(t):
        return t.requires_grad_()

    return NTMState(
        memory=leaf(torch.randn(state.memory.shape, generator=g, dtype=dtype)),
        read_weights=leaf(torch.softmax(torch.randn(state.read_weights.shape, generator=g, dtype=dtype), -1)),
        write_weights=leaf(torch.softmax(torch.randn(state.write_weights.shape, generator=g, dtype=dtype), -1)),
        reads=leaf(torch.randn(state.reads.shape, generator=g, dtype=dtype)),
        controller=tuple(leaf(torch.randn(b, cfg.controller_size, generator=g, dtype=dtype)) for _ in state.controller),
    )


def outputs_and_grads(model, path, x, state):
    """`path_outputs_and_grads` over every start tensor (a feedforward controller has none)."""
    start = (*state[:4], *state.controller)
    return path_outputs_and_grads(model, path, x, state, start, allow_unused=True)


FAST_CONFIGS = [
    {"num_reads": 2, "num_writes": 2, "shift_range": 2},  # several heads: erasures multiply, adds sum
    {"num_writes": 0, "shift_range": 0},  # a read-only memory, no shift
    {"memory_size": 3, "shift_range": 4},  # shifts longer than the ring
]


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
@pytest.mark.parametrize("sizes", FAST_CONFIGS, ids=["heads", "read_only", "long_shift"])
def test_fast_path_matches_the_eager_path_in_outputs_and_gradients(controller, sizes):
    torch.manual_seed(0)
    model = NTM(tiny(controller=controller, **sizes), *SIZES)
    x, state = torch.randn(3, 6, 9), random_start(model, 3)
    want_out, want_grads = outputs_and_grads(model, "eager", x, state)
    out, grads = outputs_and_grads(model, "fast", x, state)
    assert_close_relative([out], [want_out])
    assert_close_relative(grads, want_grads)


def test_fast_path_gradcheck_over_several_steps_float64():
    torch.manual_seed(0)
    model = NTM(tiny(controller_size=5, memory_size=4, word_size=3, num_reads=2, num_writes=2), *SIZES).double()
    set_path(model, "fast")
    x = torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)

    def run(x, memory):
        return model(x, model.initial_state(2)._replace(memory=memory))

    assert torch.autograd.gradcheck(run, (x, memory))


def test_compiled_path_matches_eager_and_compiles_once():
    if why_not_compiled() is not None:
        pytest.skip(f"torch.compile unavailable: {why_not_compiled()}")
    torch.manual_seed(0)
    model = NTM(tiny(num_reads=2), *SIZES)
    x, state = torch.randn(3, 5, 9), random_start(model, 3)
    assert_compiled_once(
        outputs_and_grads, model, "NTM fused step", x, state, torch.randn(3, 8, 9), torch.randn(3, 4, 9)
    )


def test_traced_runs_record_the_eager_steps_on_every_path():
    torch.manual_seed(0)
    model = NTM(tiny(num_reads=2, num_writes=2), *SIZES)
    x = torch.randn(2, 4, 9)
    records = {}
    for path in ("eager", "fast"):
        set_path(model, path)
        with capture(model) as trace:
            traced = model(x)
        records[path] = trace
        torch.testing.assert_close(traced, model(x), rtol=1e-5, atol=1e-6)  # traced (eager) equals untraced
    eager, fast = records["eager"], records["fast"]
    assert [(r.kind, r.step, r.weights.shape) for r in fast] == [(r.kind, r.step, r.weights.shape) for r in eager]
    for a, b in zip(fast, eager):
        torch.testing.assert_close(a.weights, b.weights, rtol=0, atol=0)


def test_set_path_selects_the_step():
    model = NTM(tiny(), *SIZES)
    assert model.path == "fast"  # the default
    assert set_path(model, "eager") == ["NTM (NTM): eager step"] and model.path == "eager"
    assert set_path(model, "compiled") == ["NTM (NTM): compiled fused NTM step"]
    assert set_path(model, "fast") == ["NTM (NTM): fused NTM step"]
    with pytest.raises(ValueError, match="path must be one of"):
        set_path(model, "slow")
