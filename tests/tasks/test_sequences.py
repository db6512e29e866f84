"""Copy, reverse and sort: determinism, layout, answers by rule, loss and metrics, rendering."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.tasks.sequences import BLANK, FIRST_SYMBOL, SEP, Copy, Reverse, SequenceConfig, Sort, letter_names

TASKS = [Copy, Reverse, Sort]
RULES = {Copy: lambda xs: list(xs), Reverse: lambda xs: xs[::-1], Sort: sorted}


def confident(targets: torch.Tensor, classes: int) -> torch.Tensor:
    """Logits (b, n, classes) that put almost all mass on targets."""
    return F.one_hot(targets, classes).float() * 50.0


def draw(task, seed, size=16):
    return task.sample(size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cls", TASKS)
def test_same_seed_same_batch_other_seed_other_batch(cls):
    task = cls(SequenceConfig(length=6, symbols=5))
    a, b, c = draw(task, 1), draw(task, 1), draw(task, 2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize("cls", TASKS)
def test_layout_and_shapes_match_spec(cls):
    task = cls(SequenceConfig(length=6, symbols=5))
    spec, batch = task.spec, draw(task, 0)
    assert (spec.seq_len, spec.answer_len, spec.vocab_size, spec.num_outputs) == (13, 6, 8, 8)
    assert batch.inputs.shape == (16, 13) and batch.targets.shape == (16, 6)
    assert batch.inputs.dtype == batch.targets.dtype == torch.long
    symbols = batch.inputs[:, :6]
    assert ((symbols >= FIRST_SYMBOL) & (symbols < 8)).all()
    assert (batch.inputs[:, 6] == SEP).all() and (batch.inputs[:, 7:] == BLANK).all()


@pytest.mark.parametrize("cls", TASKS)
def test_answers_follow_the_rule(cls):
    task = cls(SequenceConfig(length=7, symbols=4))
    batch = draw(task, 3, size=32)
    for row, answer in zip(batch.inputs.tolist(), batch.targets.tolist()):
        assert answer == RULES[cls](row[:7])


def test_every_symbol_is_drawn_and_defaults():
    task = Copy()
    assert (task.spec.seq_len, task.spec.answer_len, task.spec.vocab_size) == (21, 10, 11)
    seen = set(draw(task, 0, size=64).inputs[:, :10].unique().tolist())
    assert seen == set(range(FIRST_SYMBOL, FIRST_SYMBOL + 8))


def test_loss_and_metrics_on_hand_made_logits():
    task = Reverse(SequenceConfig(length=10, symbols=8))
    batch = draw(task, 0, size=4)
    logits = confident(batch.targets, task.spec.num_outputs)
    assert task.loss(logits, batch).item() < 1e-6
    assert task.metrics(logits, batch) == {"accuracy": 1.0, "sequence_accuracy": 1.0}
    wrong = batch.targets.clone()
    wrong[2, 5] = BLANK  # one answer of the 40 is wrong, in the third example
    metrics = task.metrics(confident(wrong, task.spec.num_outputs), batch)
    assert metrics["accuracy"] == pytest.approx(39 / 40)
    assert metrics["sequence_accuracy"] == pytest.approx(3 / 4)
    assert task.loss(confident(wrong, task.spec.num_outputs), batch).item() == pytest.approx(50.0 / 40, rel=1e-4)


def test_render_shows_input_answer_and_prediction():
    task = Sort(SequenceConfig(length=3, symbols=3))
    batch = task.sample(1, torch.Generator().manual_seed(0))
    batch.inputs[0, :3] = torch.tensor([5, 3, 4])
    batch.targets[0] = torch.tensor([3, 4, 5])
    text = task.render(batch, logits=confident(batch.targets, task.spec.num_outputs))
    assert text == "input: c a b SEP . . .\nanswer: a b c\npredicted: a b c"


def test_token_names():
    assert Copy(SequenceConfig(symbols=3)).token_names() == ["_", "SEP", ".", "a", "b", "c"]
    names = letter_names(28)
    assert names[0] == "a" and names[25] == "z" and names[26:] == ["s26", "s27"]
    assert letter_names(2, upper=True) == ["A", "B"]


@pytest.mark.parametrize("field", ["length", "symbols"])
def test_config_validation(field):
    with pytest.raises(ValueError, match=f"^{field} must be >= 1, got 0$"):
        SequenceConfig(**{field: 0})
