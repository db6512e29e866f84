import pytest
import torch

from attnlab.tasks import build_task
from attnlab.tasks.algorithmic import IGNORE
from attnlab.tasks.base import Batch


def _sample(name, b=64, seed=0, **config):
    task = build_task(name, config)
    return task, task.sample(b, torch.Generator().manual_seed(seed))


def _steps(x):
    """The steps after the left padding (the first non-zero step on)."""
    used = (x.abs().sum(-1) > 0).nonzero().flatten()
    return x[int(used[0]):]


def _answers(y):
    return y[(y != IGNORE).all(-1)]


@pytest.mark.parametrize("name", ["ntm_copy", "ntm_repeat_copy", "ntm_associative_recall", "ntm_priority_sort"])
def test_batches_fit_the_spec_and_are_deterministic(name):
    task, batch = _sample(name, b=8)
    spec = task.spec
    assert batch.inputs.shape == (8, spec.seq_len, spec.input_features)
    assert batch.targets.shape == (8, spec.answer_len, spec.num_outputs)
    assert batch.inputs.dtype == torch.float32
    _, again = _sample(name, b=8)
    _, other = _sample(name, b=8, seed=1)
    assert torch.equal(batch.inputs, again.inputs) and torch.equal(batch.targets, again.targets)
    assert not torch.equal(batch.inputs, other.inputs)
    valid = batch.targets[batch.targets != IGNORE]
    assert set(valid.unique().tolist()) <= {0.0, 1.0}


def test_copy_answers_are_the_vectors_before_the_delimiter():
    task, batch = _sample("ntm_copy", min_length=1, max_length=9)
    lengths = set()
    for x, y in zip(batch.inputs, batch.targets):
        steps = _steps(x)
        opening, delimiter = steps[:, 8].nonzero().flatten().tolist()
        assert opening == 0
        read = steps[1:delimiter, :8]
        assert torch.equal(_answers(y), read)
        assert steps.shape[0] == 2 * delimiter  # the blanks to answer at
        assert steps[delimiter + 1:].abs().sum() == 0
        lengths.add(delimiter - 1)
    assert lengths == set(range(1, 10))  # every length of the range occurs in 64 draws


def test_copy_test_length_is_fixed():
    task, batch = _sample("ntm_copy", min_length=120, max_length=120)
    assert task.spec.seq_len == 242
    assert (batch.targets != IGNORE).all()


def test_repeat_copy_writes_the_sequence_r_times_then_the_end_marker():
    task, batch = _sample("ntm_repeat_copy", max_length=5, max_repeats=4)
    for x, y in zip(batch.inputs, batch.targets):
        steps = _steps(x)
        opening, delimiter = steps[:, 8].nonzero().flatten().tolist()
        repeats = round(float(steps[delimiter, 9]) * 4)
        answers = _answers(y)
        assert torch.equal(answers[:-1, :8], steps[1:delimiter, :8].repeat(repeats, 1))
        assert answers[:-1, 8].sum() == 0 and answers[-1].tolist() == [0.0] * 8 + [1.0]


def test_associative_recall_answers_the_item_after_the_query():
    task, batch = _sample("ntm_associative_recall", min_items=2, max_items=6)
    for x, y in zip(batch.inputs, batch.targets):
        steps = _steps(x)
        opens = steps[:, 6].nonzero().flatten().tolist()
        items = [steps[o + 1:o + 4, :6] for o in opens]
        q = steps[:, 7].nonzero().flatten().tolist()
        assert len(q) == 2 and q[1] - q[0] == 4
        query = steps[q[0] + 1:q[1], :6]
        hits = [k for k, item in enumerate(items) if torch.equal(item, query)]
        assert hits and hits[0] < len(items) - 1
        assert torch.equal(_answers(y), items[hits[0] + 1])


def test_priority_sort_writes_the_most_urgent_first():
    task, batch = _sample("ntm_priority_sort", num_inputs=10, num_sorted=4)
    for x, y in zip(batch.inputs, batch.targets):
        vectors, priority = x[:10, :8], x[:10, 9]
        ranked = sorted(range(10), key=lambda k: -float(priority[k]))[:4]
        assert torch.equal(y, vectors[ranked])
        assert x[10, 8] == 1 and x[11:].abs().sum() == 0


def test_metrics_count_wrong_bits_per_sequence_and_skip_absent_answers():
    targets = torch.tensor([[[IGNORE, IGNORE], [1.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])  # (2, 2, 2)
    perfect = torch.where(targets == 1, 5.0, -5.0)
    task = build_task("ntm_copy")
    batch = Batch(torch.zeros(2, 3, 9), targets)
    good = task.metrics(perfect, batch)
    assert good["bit_errors"] == 0 and good["accuracy"] == 1
    wrong = perfect.clone()
    wrong[0, 0] = -wrong[0, 0]  # an absent answer row: does not count
    wrong[1, 1, 0] = -5.0  # one real bit wrong in sequence 1
    bad = task.metrics(wrong, batch)
    assert bad["bit_errors"] == pytest.approx(0.5) and bad["accuracy"] == 0.5
    assert task.loss(wrong, batch) > task.loss(perfect, batch)
    # the loss ignores absent rows entirely
    changed = perfect.clone()
    changed[0, 0] = 100.0
    assert task.loss(changed, batch) == task.loss(perfect, batch)
    # bits: the cross-entropy per sequence in bits, by hand for the all-zero logits
    half = task.metrics(torch.zeros(2, 2, 2), batch)
    assert half["bits"] == pytest.approx((2 + 4) / 2)  # 1 bit per existing entry


@pytest.mark.parametrize("name, values, field", [
    ("ntm_copy", {"min_length": 0}, "min_length"),
    ("ntm_copy", {"min_length": 5, "max_length": 3}, "max_length"),
    ("ntm_associative_recall", {"min_items": 1}, "min_items"),
    ("ntm_priority_sort", {"num_sorted": 30}, "num_sorted"),
])
def test_bad_configs_name_the_field(name, values, field):
    with pytest.raises(Exception, match=field):
        build_task(name, values)


def test_render_shows_input_answer_and_prediction():
    task, batch = _sample("ntm_copy", b=2, min_length=3, max_length=3)
    text = task.render(batch, 0, logits=torch.where(batch.targets == 1, 1.0, -1.0))
    lines = text.splitlines()
    assert len(lines) == 3 and lines[1].removeprefix("answer: ") == lines[2].removeprefix("predicted: ")
