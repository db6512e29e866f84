"""Recurrent encoder-decoders (and encdec through the same interface): shapes, overfitting a few
sentence pairs, the incremental decoder against the full recompute, padding invariance, config
errors, a planted alignment (reversal) recovered by the cross-attention, and the fused and
compiled teacher forcing of bahdanau and luong against the eager loop."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.core.fast import set_path
from attnlab.models import build_model
from attnlab.models.decoding import cross_attention, greedy
from attnlab.models.seq2seq import front_order
from attnlab.spec import PAD, TaskSpec
from batches import TINY_DECODERS, fit

EOS = 1
TINY = TINY_DECODERS
VARIANTS = [
    ("seq2seq", {}),
    ("seq2seq", {"cell": "lstm", "num_layers": 2}),
    ("bahdanau", {}),
    ("bahdanau", {"num_layers": 2}),
    ("bahdanau", {"output_dim": 10}),
    ("luong", {}),
    ("luong", {"method": "dot", "bidirectional": True, "num_layers": 2}),
    ("encdec", {}),
]
RECURRENT = [v for v in VARIANTS if v[0] != "encdec"]


def ids(variant):
    name, extra = variant
    return name + "".join(f"-{k}={v}" for k, v in extra.items())


def spec_for(n=6, vocab=12, outputs=None, eos=EOS):
    return TaskSpec(seq_len=n, answer_len=n, vocab_size=vocab, num_outputs=outputs or vocab, eos_id=eos)


def tiny(name, spec, seed=0, **extra):
    torch.manual_seed(seed)
    return build_model(name, {**TINY[name], **extra}, spec).eval()


def reversal(b, seed, lo=3, hi=5, vocab=12):
    """Right-padded sources of lengths lo..hi over ids 2..vocab-1; targets reversed, then EOS, then PAD."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi + 1, (b,), generator=gen)  # (b,)
    tokens = torch.randint(2, vocab, (b, hi), generator=gen)  # (b, hi)
    inputs = torch.full((b, hi + 1), PAD)  # (b, hi + 1)
    targets = torch.full((b, hi + 1), PAD)  # (b, hi + 1)
    for r, n in enumerate(lengths.tolist()):
        inputs[r, :n] = tokens[r, :n]
        targets[r, :n] = tokens[r, :n].flip(0)
        targets[r, n] = EOS
    return inputs, targets, lengths


def to_left_padding(inputs):
    """The same rows with their real tokens moved to the end."""
    order = torch.argsort((inputs != PAD).to(torch.uint8), dim=1, stable=True)  # (b, s)
    return inputs.gather(1, order)


def incremental(model, inputs, targets):
    """start/step fed the targets: (b, n, o)."""
    state = model.start(inputs)
    token = torch.full((inputs.shape[0],), model.bos_id)
    out = []
    for t in range(targets.shape[1]):
        logits, state = model.step(token, state)  # (b, o)
        out.append(logits)
        token = targets[:, t]
    return torch.stack(out, dim=1)  # (b, n, o)


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_shapes_in_both_modes_and_bos_past_the_answers(variant):
    name, extra = variant
    spec = TaskSpec(seq_len=7, answer_len=4, vocab_size=12, num_outputs=5)
    model = tiny(name, spec, **extra)
    inputs, _, _ = reversal(3, seed=1, hi=6)
    targets = torch.randint(0, 5, (3, 4))
    assert model.bos_id == 5
    assert model(inputs).shape == (3, 4, 5)
    assert model(inputs, targets).shape == (3, 4, 5)  # eval mode: targets are not read
    torch.testing.assert_close(model(inputs, targets), model(inputs))
    assert model.train()(inputs, targets).shape == (3, 4, 5)


@pytest.mark.parametrize("variant", VARIANTS, ids=ids)
def test_the_incremental_decoder_equals_the_full_recompute(variant):
    name, extra = variant
    spec = spec_for()
    model = tiny(name, spec, **extra)
    inputs, targets, _ = reversal(5, seed=2)
    forced = model.teacher_force(inputs, targets)  # (b, n, o)
    torch.testing.assert_close(incremental(model, inputs, targets), forced, rtol=0, atol=1e-5)
    torch.testing.assert_close(model.train()(inputs, targets), forced, rtol=0, atol=1e-5)  # no dropout here
    other = targets.roll(1, dims=0)
    assert not torch.allclose(model.teacher_force(inputs, other)[:, 1:], forced[:, 1:], atol=1e-4)


@pytest.mark.parametrize("name", ["seq2seq", "bahdanau", "luong", "encdec"])
def test_overfits_a_few_sentence_pairs(name):
    spec = spec_for()
    inputs, targets, _ = reversal(8, seed=3)
    model = tiny(name, spec).train()
    if name == "encdec":
        model = tiny(name, spec, embed_dim=32, ff_dim=64).train()
    loss = fit(
        lambda: F.cross_entropy(model(inputs, targets).flatten(0, 1), targets.flatten(), ignore_index=PAD),
        model.parameters(),
        steps=400,
        lr=1e-2,
        stop=0.02,
    )
    assert loss < 0.02
    model.eval()
    assert torch.equal(greedy(model, inputs, spec.answer_len), targets)  # tokens, EOS, then PAD
    answers = targets != PAD
    assert torch.equal(model(inputs).argmax(-1)[answers], targets[answers])


@pytest.mark.parametrize("variant", RECURRENT, ids=ids)
def test_padding_never_changes_the_logits(variant):
    name, extra = variant
    model = tiny(name, spec_for(n=9), **extra)
    inputs, targets, _ = reversal(4, seed=4)  # (b, 6), right-padded
    wider = torch.cat([inputs, torch.full((4, 3), PAD)], dim=1)  # (b, 9)
    left = to_left_padding(wider)
    assert not torch.equal(left, wider)
    forced = model.teacher_force(inputs, targets)  # (b, n, o)
    for padded in (wider, left):
        torch.testing.assert_close(model.teacher_force(padded, targets), forced, rtol=0, atol=1e-6)
        torch.testing.assert_close(model(padded)[:, :6], model(inputs)[:, :6], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["bahdanau", "luong"])
def test_cross_attention_follows_the_input_columns_under_any_padding(name):
    model = tiny(name, spec_for(n=9))
    inputs, targets, _ = reversal(4, seed=5)
    left = to_left_padding(torch.cat([inputs, torch.full((4, 3), PAD)], dim=1))  # (b, 9)
    (right_w,) = cross_attention(model, inputs, targets)  # (b, 1, i, 6)
    (left_w,) = cross_attention(model, left, targets)  # (b, 1, i, 9)
    for r in range(4):
        real_right, real_left = inputs[r] != PAD, left[r] != PAD
        torch.testing.assert_close(left_w[r][..., real_left], right_w[r][..., real_right], rtol=0, atol=1e-6)
        assert float(left_w[r][..., ~real_left].abs().sum()) == 0.0


def test_front_order_moves_real_tokens_first_stably():
    inputs = torch.tensor([[0, 0, 5, 6], [7, 8, 0, 0], [0, 9, 0, 3]])
    assert inputs.gather(1, front_order(inputs)).tolist() == [[5, 6, 0, 0], [7, 8, 0, 0], [9, 3, 0, 0]]


def test_an_all_pad_row_gives_finite_logits():
    model = tiny("bahdanau", spec_for())
    inputs, targets, _ = reversal(3, seed=6)
    inputs[1] = PAD
    assert bool(model.teacher_force(inputs, targets).isfinite().all())
    assert bool(model(inputs).isfinite().all())


@pytest.mark.parametrize(
    "name, config, message",
    [
        ("seq2seq", {"cell": "rnn"}, r"Seq2SeqConfig.cell: 'rnn' is not one of gru, lstm"),
        ("seq2seq", {"hidden_dim": 0}, r"Seq2SeqConfig.hidden_dim: must be >= 1; got 0"),
        ("bahdanau", {"attn_dim": 0}, r"BahdanauConfig.attn_dim: must be >= 1; got 0"),
        ("bahdanau", {"dropout": 1.0}, r"BahdanauConfig.dropout: must be in \[0, 1\); got 1.0"),
        ("luong", {"method": "concat"}, r"LuongConfig.method: 'concat' is not one of dot, general"),
        ("luong", {"bidirectional": True, "hidden_dim": 7}, r"LuongConfig.hidden_dim: must be even"),
        ("luong", {"output_dim": 8}, r"LuongConfig.output_dim: must be 0"),
        ("seq2seq", {"output_dim": -1}, r"Seq2SeqConfig.output_dim: must be >= 0; got -1"),
    ],
)
def test_config_errors_name_the_field(name, config, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, config, spec_for())


@pytest.mark.parametrize("name", ["seq2seq", "bahdanau", "luong"])
def test_refuses_float_inputs(name):
    spec = TaskSpec(seq_len=6, answer_len=2, input_features=3, num_outputs=4)
    with pytest.raises(ValueError, match=f"model '{name}' needs token inputs and answers; this task has float inputs"):
        build_model(name, {}, spec)


def test_default_sizes_are_about_1e5_parameters():
    for name in ("seq2seq", "bahdanau", "luong"):
        count = sum(p.numel() for p in build_model(name, {}, spec_for(vocab=20)).parameters())
        assert 5e4 < count < 1.5e5, (name, count)


@pytest.mark.parametrize("name", ["bahdanau", "luong"])
def test_a_planted_alignment_is_recovered(name):
    # Target = source reversed: predicting target word i must look at source word n - 1 - i.
    spec = spec_for(n=7)
    torch.manual_seed(0)
    extra = {"attn_dim": 32} if name == "bahdanau" else {}
    model = build_model(name, dict(embed_dim=16, hidden_dim=32, **extra), spec).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(200):
        inputs, targets, _ = reversal(32, seed=100 + step, lo=4, hi=6)
        loss = F.cross_entropy(model(inputs, targets).flatten(0, 1), targets.flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    inputs, targets, lengths = reversal(64, seed=7, lo=4, hi=6)
    (weights,) = cross_attention(model, inputs, targets)  # (b, 1, i, j)
    assert model.training  # cross_attention restores the mode
    hits = total = 0
    for r, n in enumerate(lengths.tolist()):
        looked_at = weights[r, 0, :n].argmax(-1)  # (n,) the source position of each target word
        hits += int((looked_at == torch.arange(n - 1, -1, -1)).sum())
        total += n
    assert hits / total >= 0.8


def test_deep_output_is_maxout_over_pairs_then_the_vocabulary():
    from attnlab.models.seq2seq import DeepOutput

    torch.manual_seed(0)
    layer = DeepOutput(5, 3, 7)
    x = torch.randn(2, 4, 5)
    hidden = x @ layer.maxout.weight.T + layer.maxout.bias  # (2, 4, 6)
    by_hand = torch.stack([torch.maximum(hidden[..., 2 * k], hidden[..., 2 * k + 1]) for k in range(3)], -1)
    expected = by_hand @ layer.vocab.weight.T + layer.vocab.bias  # (2, 4, 7)
    assert torch.allclose(layer(x), expected, atol=1e-6)
    plain = DeepOutput(5, 0, 7)
    assert plain.maxout is None and plain(x).shape == (2, 4, 7)


FUSED = [v for v in RECURRENT if v[0] != "seq2seq"] + [
    ("bahdanau", {"num_layers": 2, "dropout": 0.3}),
    ("luong", {"num_layers": 3, "dropout": 0.3}),  # dropout between the decoder's layers too
]


def forced_run(model, path, inputs, targets, seed=3):
    """Training-mode teacher forcing on `path` from a fixed seed: logits, gradients, the next draw."""
    set_path(model, path)
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    logits = model(inputs, targets)  # (b, n, o)
    F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return logits, grads, torch.rand(1)


def assert_same_forced(got, expected, atol=1e-5):
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=atol)
    assert got[1].keys() == expected[1].keys()
    for name in got[1]:
        torch.testing.assert_close(got[1][name], expected[1][name], rtol=0, atol=atol, msg=name)
    assert torch.equal(got[2], expected[2])  # the same draws from the global generator


@pytest.mark.parametrize("variant", FUSED, ids=ids)
def test_fused_teacher_forcing_equals_the_eager_loop_with_the_same_dropout(variant):
    name, extra = variant
    model = tiny(name, spec_for(n=9), **extra)
    inputs, targets, _ = reversal(5, seed=8)
    inputs = torch.cat([inputs, torch.full((5, 3), PAD)], dim=1)  # (b, 9)
    inputs[1] = to_left_padding(inputs[1:2])[0]
    inputs[2] = PAD  # a sentence of PAD only
    eager = forced_run(model, "eager", inputs, targets)
    assert_same_forced(forced_run(model, "fast", inputs, targets), eager)
    if extra.get("dropout"):  # the draws matter: another seed gives other logits
        assert not torch.allclose(forced_run(model, "eager", inputs, targets, seed=4)[0], eager[0])


@pytest.mark.parametrize("name", ["bahdanau", "luong"])
def test_a_trace_runs_the_eager_loop_on_any_path(name):
    model = tiny(name, spec_for())
    inputs, targets, _ = reversal(3, seed=9)
    eager = model.teacher_force_eager(inputs, targets)
    set_path(model, "fast")
    with capture(model) as trace:
        traced = model.teacher_force(inputs, targets)
    assert len(trace.select(kind="cross")) == targets.shape[1]
    assert torch.equal(traced, eager)  # the very ops of the eager loop


@pytest.mark.parametrize("name", ["bahdanau", "luong"])
def test_compiled_teacher_forcing_equals_the_eager_loop_and_compiles_once(name):
    from torch._dynamo.utils import counters

    from attnlab.core.fast import FALLBACKS, why_not_compiled

    model = tiny(name, spec_for(n=9), embed_dim=8, hidden_dim=8, **({"attn_dim": 8} if name == "bahdanau" else {}))
    first = reversal(4, seed=10, lo=3, hi=5)[:2]
    assert_same_forced(forced_run(model, "compiled", *first), forced_run(model, "eager", *first))
    graphs = counters["stats"]["unique_graphs"]
    for seed, (lo, hi) in ((11, (6, 8)), (12, (2, 3))):  # other source and target lengths: the same graph
        batch = reversal(4, seed=seed, lo=lo, hi=hi)[:2]
        assert_same_forced(forced_run(model, "compiled", *batch), forced_run(model, "eager", *batch))
    assert counters["stats"]["unique_graphs"] == graphs
    if why_not_compiled() is None:  # it compiled, rather than falling back to the fused step
        assert f"{name}.step" not in FALLBACKS
