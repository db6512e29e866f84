"""Shared by the model tests: left-padded token ids, a copy-the-first-n-tokens task, a fitting loop,
tiny sizes of the decoding families, and the comparison of a machine's step paths."""

import torch

from attnlab.core.fast import set_path
from attnlab.spec import PAD

TINY_DECODERS = {  # family -> config small enough for a test
    "seq2seq": dict(embed_dim=16, hidden_dim=24),
    "bahdanau": dict(embed_dim=16, hidden_dim=24, attn_dim=24),
    "luong": dict(embed_dim=16, hidden_dim=24),
    "encdec": dict(embed_dim=16, num_heads=2, num_layers=1, ff_dim=32),
}


def left_padded(spec, b, seed, min_len=None):
    """(b, t) ids in 1..vocab-1 with a random real length per row, PAD on the left."""
    gen = torch.Generator().manual_seed(seed)
    t = spec.seq_len
    ids = torch.randint(1, spec.vocab_size, (b, t), generator=gen)
    lengths = torch.randint(min_len or spec.answer_len, t + 1, (b,), generator=gen)
    ids[torch.arange(t)[None, :] < (t - lengths)[:, None]] = PAD
    return ids


def copy_batch(spec, b=16, seed=0):
    """Left-padded inputs; the answer is the first n real tokens of each row."""
    inputs = left_padded(spec, b, seed)
    first = (inputs != PAD).int().argmax(1)  # (b,) index of the first real token
    targets = torch.stack([inputs[r, first[r] : first[r] + spec.answer_len] for r in range(b)])  # (b, n)
    return inputs, targets


def fit(loss_fn, params, *, steps: int, lr: float, stop: float = 0.0, optimizer=torch.optim.AdamW) -> float:
    """Minimise loss_fn() over params for at most `steps` steps, stopping once it is below `stop`.

    Returns the last loss computed.
    """
    opt = optimizer(list(params), lr=lr)
    for _ in range(steps):
        loss = loss_fn()
        if loss.item() < stop:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def path_outputs_and_grads(model, path, x, state, start, allow_unused=False):
    """Logits of model(x, state) on a path, and the gradients of a fixed function of them for every
    parameter and every start tensor in `start` (zeros for an unused one when allow_unused)."""
    set_path(model, path)
    out = model(x, state)
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    loss = (out * weights).sum() + out.square().sum()
    leaves = [*model.parameters(), *start]
    return out, torch.autograd.grad(loss, leaves, allow_unused=allow_unused, materialize_grads=allow_unused)


def assert_close_relative(got, want, rel=1e-5):
    """Each tensor equal up to rel times its own largest entry (fp32 rounding over a few steps)."""
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=rel * max(w.abs().amax().item() if w.numel() else 0, 1e-6))


def assert_compiled_once(outputs_and_grads, model, name, x, state, longer, evaluated):
    """A machine's compiled path against its eager path (outputs and every gradient), compiled once:
    two graphs (the step forward and backward), reused by a longer sequence and by evaluation.

    Args:
        outputs_and_grads: (model, path, x, state) -> (logits, gradients), the machine's test helper.
        name: the step's name in core.fast (FALLBACKS, COMPILE_SECONDS).
        x, state: a batch and its start state; longer, evaluated: inputs of more and of fewer steps.
    """
    from torch._dynamo.utils import counters

    from attnlab.core.fast import COMPILE_SECONDS, FALLBACKS

    want_out, want_grads = outputs_and_grads(model, "eager", x, state)
    graphs = counters["stats"]["unique_graphs"]
    out, grads = outputs_and_grads(model, "compiled", x, state)
    assert_close_relative([out], [want_out])
    assert_close_relative(grads, want_grads)
    assert name not in FALLBACKS and name in COMPILE_SECONDS
    compiled_graphs = counters["stats"]["unique_graphs"]
    assert compiled_graphs - graphs == 2  # one step forward, one step backward: every time step reuses them
    outputs_and_grads(model, "compiled", longer, state)
    with torch.no_grad():  # evaluation runs the same forward step
        model(evaluated)
    assert counters["stats"]["unique_graphs"] == compiled_graphs
