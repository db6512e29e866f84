"""Transformer families: shapes, overfitting one batch, KV-cached greedy decoding against the full
teacher-forced pass, refused tasks, and PAD keys that get no attention."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.core import capture
from attnlab.models import build_model
from attnlab.spec import PAD, TaskSpec
from batches import copy_batch, fit, left_padded

TINY = {"embed_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32}
FAMILIES = ["transformer", "encdec", "lm"]
DECODERS = ["encdec", "lm"]



def token_spec(t=8, n=3, vocab=10):
    return TaskSpec(seq_len=t, answer_len=n, vocab_size=vocab, num_outputs=vocab)


def tiny(name, spec, **extra):
    torch.manual_seed(0)
    return build_model(name, {**TINY, **extra}, spec).eval()


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("n", [1, 3])
def test_token_shapes_in_both_modes(name, n):
    spec = token_spec(n=n)
    inputs = left_padded(spec, 5, seed=1, min_len=n)
    targets = torch.randint(1, 10, (5, n))
    assert (inputs == PAD).any()
    model = tiny(name, spec)
    assert model(inputs).shape == (5, n, 10)
    assert model.train()(inputs, targets).shape == (5, n, 10)


@pytest.mark.parametrize("n", [1, 3])
def test_transformer_float_shapes(n):
    spec = TaskSpec(seq_len=8, answer_len=n, input_features=4, num_outputs=1)
    assert tiny("transformer", spec)(torch.randn(5, 8, 4)).shape == (5, n, 1)


def test_encdec_answers_may_use_their_own_classes():
    spec = TaskSpec(seq_len=8, answer_len=2, vocab_size=10, num_outputs=3)
    model = tiny("encdec", spec)
    assert model.bos_id == 3
    assert model(left_padded(spec, 4, seed=3)).shape == (4, 2, 3)  # the BOS column is not an answer


@pytest.mark.parametrize("name", FAMILIES)
def test_overfits_one_batch(name):
    spec = token_spec(t=8, n=3, vocab=10)
    inputs, targets = copy_batch(spec)
    model = tiny(name, spec, embed_dim=32, ff_dim=64).train()
    # 48 answers at a mean loss under 0.01: each has p > 0.5, so greedy decoding reproduces them all
    loss = fit(lambda: F.cross_entropy(model(inputs, targets).flatten(0, 1), targets.flatten()),
               model.parameters(), steps=300, lr=1e-2, stop=0.01)
    assert loss < 0.01
    model.eval()  # decoders now decode greedily from their own predictions
    assert torch.equal(model(inputs).argmax(-1), targets)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("positions", ["sinusoidal", "rope", "alibi", "learned"])
def test_cached_greedy_decoding_equals_the_teacher_forced_pass(name, positions):
    spec = token_spec(t=7, n=4)
    model = tiny(name, spec, num_layers=2, positions=positions).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    inputs, targets = copy_batch(spec, seed=4)
    for _ in range(40):  # part-trained: predictions that vary and depend on the tokens before them
        loss = F.cross_entropy(model(inputs, targets).flatten(0, 1), targets.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    inputs = left_padded(spec, 6, seed=5)
    greedy = model(inputs)  # (b, n, o)
    predictions = greedy.argmax(-1)  # (b, n)
    assert len(set(predictions.flatten().tolist())) > 1
    forced = model.train()(inputs, predictions)
    torch.testing.assert_close(forced, greedy, rtol=1e-4, atol=1e-5)
    other = (predictions % 9) + 1  # different targets move the teacher-forced logits after step 0
    assert not torch.allclose(model(inputs, other)[:, 1:], greedy[:, 1:], atol=1e-3)


@pytest.mark.parametrize("name", DECODERS)
def test_eval_mode_ignores_targets(name):
    spec = token_spec()
    model = tiny(name, spec)
    inputs = left_padded(spec, 3, seed=5)
    torch.testing.assert_close(model(inputs, torch.randint(1, 10, (3, 3))), model(inputs))


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize(
    "spec, why",
    [
        (TaskSpec(seq_len=6, answer_len=2, input_features=3, num_outputs=4), "float inputs"),
        (TaskSpec(seq_len=6, answer_len=2, input_features=3, num_outputs=1), "float inputs"),
        (TaskSpec(seq_len=6, answer_len=2, vocab_size=10, num_outputs=1), "regression answers"),
    ],
)
def test_decoders_refuse_tasks_they_cannot_write(name, spec, why):
    with pytest.raises(ValueError, match=f"model '{name}' needs token inputs and answers; this task has {why}"):
        build_model(name, TINY, spec)


def test_lm_needs_one_vocabulary():
    with pytest.raises(ValueError, match="model 'lm' needs token inputs and answers; this task has 3 answer classes"):
        build_model("lm", TINY, TaskSpec(seq_len=6, answer_len=2, vocab_size=10, num_outputs=3))


def test_transformer_pad_keys_get_no_attention():
    spec = token_spec(t=8, n=2)
    model = tiny("transformer", spec, num_layers=2)
    inputs = left_padded(spec, 4, seed=6, min_len=2)
    inputs[0, :3] = PAD  # at least one row with padding
    with capture(model) as trace:
        model(inputs)
    records = trace.select(kind="self")
    assert len(records) == 2
    pad = (inputs == PAD)[:, None, None, :]  # (b, 1, 1, j)
    for record in records:
        weights = record.weights  # (b, h, i, j)
        assert weights.shape == (4, 2, 8, 8)
        assert torch.equal(weights.masked_select(pad), torch.zeros(int(pad.sum()) * 2 * 8))
        torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2, 8))
        assert bool((weights.masked_fill(pad, 1.0) > 0).all())  # every real key gets some weight


def test_transformer_float_inputs_are_not_masked():
    spec = TaskSpec(seq_len=6, answer_len=1, input_features=3, num_outputs=1)
    model = tiny("transformer", spec)
    x = torch.randn(2, 6, 3)
    x[:, 0] = 0.0  # an all-zero vector is a value, not padding
    with capture(model) as trace:
        model(x)
    assert bool((trace.select(kind="self")[0].weights[..., 0] > 0).all())


def test_encdec_source_pad_gets_no_cross_attention():
    spec = token_spec(t=8, n=2)
    model = tiny("encdec", spec)
    inputs = left_padded(spec, 3, seed=7)
    inputs[0, :4] = PAD
    with capture(model) as trace:
        model(inputs)
    cross = trace.select(kind="cross")
    assert len(cross) == 2  # one per decoding step
    pad = (inputs == PAD)[:, None, None, :]  # (b, 1, 1, j)
    for record in cross:
        assert float(record.weights.masked_select(pad).abs().sum()) == 0.0
    assert torch.equal(model.net.src_embed.proj.weight[PAD], torch.zeros(16))  # the shared input layer


@pytest.mark.parametrize("training", [True, False])
def test_lm_ignores_left_padding(training):
    # with relative (rotary) positions and PAD keys masked, more left padding changes nothing
    spec = token_spec(t=9, n=2)
    model = tiny("lm", spec, positions="rope").train(training)
    short = torch.randint(1, spec.vocab_size, (3, 6), generator=torch.Generator().manual_seed(8))  # (b, 6)
    targets = torch.randint(1, spec.vocab_size, (3, 2), generator=torch.Generator().manual_seed(9))  # (b, n)
    padded = torch.cat([torch.full((3, 3), PAD), short], dim=1)  # (b, 9)
    shorter_spec = token_spec(t=6, n=2)
    unpadded = tiny("lm", shorter_spec, positions="rope").train(training)
    unpadded.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(padded, targets), unpadded(short, targets), rtol=1e-5, atol=1e-5)
    with capture(model.eval()) as trace:
        model(padded)
    for record in trace.select(kind="self"):
        assert float(record.weights[..., :3].abs().max()) == 0.0  # (b, h, i, j): no weight on the padding
