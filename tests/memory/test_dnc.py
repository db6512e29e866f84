import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from attnlab.core import capture
from attnlab.core.fast import set_path, why_not_compiled
from attnlab.memory.dnc import DNC, DNCConfig, DNCState
from batches import assert_close_relative, assert_compiled_once, path_outputs_and_grads

D = torch.float64


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
    torch.testing.assert_close(model(x), by_hand, rtol=1e-5, atol=1e-6)  # the default, fast path
    set_path(model, "eager")
    plain = model(x)
    torch.testing.assert_close(plain, by_hand, rtol=0, atol=0)
    set_path(model, "fast")
    with capture(model) as trace:  # a trace runs the eager step on every path
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


# ---- the fast and compiled paths ----------------------------------------------------------------


def random_start(model, b, seed=0):
    """A lived-in start state (random memory, usage, links, weightings, reads, controller) that requires grad."""
    g = torch.Generator().manual_seed(seed)
    zeros = model.initial_state(b)

    def rand(t, simplex=False):
        x = torch.rand(t.shape, generator=g) if not simplex else torch.softmax(torch.randn(t.shape, generator=g), -1)
        return x.requires_grad_()

    return DNCState(
        memory=torch.randn(zeros.memory.shape, generator=g).requires_grad_(),
        usage=rand(zeros.usage),
        link=rand(zeros.link),
        precedence=rand(zeros.precedence, simplex=True),
        read_weights=rand(zeros.read_weights, simplex=True),
        write_weights=rand(zeros.write_weights, simplex=True),
        reads=rand(zeros.reads),
        controller=(rand(zeros.controller[0]), rand(zeros.controller[1])),
    )


def outputs_and_grads(model, path, x, state):
    """`path_outputs_and_grads` over every start tensor."""
    return path_outputs_and_grads(model, path, x, state, (*state[:7], *state.controller))


@pytest.mark.parametrize("num_reads", [1, 2, 4])
def test_fast_path_matches_the_eager_path_in_outputs_and_gradients(num_reads):
    model = _tiny(input_size=4, output_size=3, memory_size=6, word_size=4, num_reads=num_reads)
    x, state = torch.randn(3, 7, 4), random_start(model, 3)
    want_out, want_grads = outputs_and_grads(model, "eager", x, state)
    out, grads = outputs_and_grads(model, "fast", x, state)
    assert_close_relative([out], [want_out])
    assert_close_relative(grads, want_grads)


def test_fast_path_gradcheck_over_several_steps_float64():
    model = _tiny(dtype=D)
    set_path(model, "fast")
    x = torch.randn(2, 4, 3, dtype=D, requires_grad=True)
    memory = torch.randn(2, 5, 3, dtype=D, requires_grad=True)

    def run(x, memory):
        return model(x, model.initial_state(2)._replace(memory=memory))

    assert gradcheck(run, (x, memory))


def test_compiled_path_matches_eager_and_compiles_once():
    if why_not_compiled() is not None:
        pytest.skip(f"torch.compile unavailable: {why_not_compiled()}")
    model = _tiny(input_size=4, output_size=3, memory_size=6, word_size=4, num_reads=2)
    x, state = torch.randn(3, 5, 4), random_start(model, 3)
    assert_compiled_once(
        outputs_and_grads, model, "DNC fused step", x, state, torch.randn(3, 8, 4), torch.randn(3, 4, 4)
    )


def test_traced_runs_record_the_eager_steps_on_every_path():
    model = _tiny(input_size=4, output_size=3, memory_size=6, num_reads=2)
    x = torch.randn(2, 4, 4)
    traces = {}
    for path in ("eager", "fast"):
        set_path(model, path)
        with capture(model) as trace:
            model(x)
        traces[path] = trace
    eager, fast = traces["eager"], traces["fast"]
    assert [(r.kind, r.step, r.weights.shape) for r in fast] == [(r.kind, r.step, r.weights.shape) for r in eager]
    for a, b in zip(fast, eager):
        torch.testing.assert_close(a.weights, b.weights, rtol=0, atol=0)
        assert a.extra.keys() == b.extra.keys()


def test_set_path_selects_the_step():
    model = _tiny()
    assert model.path == "fast"  # the default
    assert set_path(model, "eager") == ["DNC (DNC): eager step"] and model.path == "eager"
    assert set_path(model, "compiled") == ["DNC (DNC): compiled fused DNC step"]
    assert set_path(model, "fast") == ["DNC (DNC): fused DNC step"]
