"""The task registry, build_task's config checks, eval_set and the contract every task keeps."""

import pytest
import torch

from attnlab.errors import ConfigError
from attnlab.tasks import PAD, TASKS, Batch, Task, build_task

# small configs so that the contract runs quickly for every registered task
SMALL = {"listops": {"train_size": 60, "val_size": 10, "test_size": 10}, "translate": {"toy_pairs": 200},
         "digits": {"source": "small"}, "caption": {"scenes": 40}, "digit_pairs": {"source": "small"}}
EXPECTED = {
    "adding", "associative_recall", "babi", "copy", "induction_heads", "listops",
    "long_range", "pronouns", "reverse", "selective_copying", "sort", "translate",
    "ntm_copy", "ntm_repeat_copy", "ntm_associative_recall", "ntm_priority_sort", "digits", "caption",
    "digit_pairs",
}


def test_every_task_is_registered_with_a_one_line_summary():
    assert set(TASKS.names()) == EXPECTED
    for name in TASKS.names():
        assert issubclass(TASKS.get(name), Task)
        summary = TASKS.summary(name)
        assert summary and "\n" not in summary


def test_unknown_task_names_the_closest():
    with pytest.raises(ConfigError, match='did you mean "copy"'):
        TASKS.get("coppy")
    with pytest.raises(ConfigError, match='did you mean "induction_heads"'):
        build_task("induction_head")


def test_unknown_config_key_names_the_closest():
    with pytest.raises(ConfigError, match=r'task\.lenght \(did you mean "length"\?\)'):
        build_task("copy", {"lenght": 3})
    with pytest.raises(ConfigError, match='did you mean "num_pairs"'):
        build_task("associative_recall", {"num_pair": 3})


def test_build_task_converts_and_validates_values():
    task = build_task("copy", {"length": "4", "symbols": 3})
    assert (task.config.length, task.config.symbols) == (4, 3)
    with pytest.raises(ConfigError, match="length must be >= 1, got 0"):
        build_task("copy", {"length": 0})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_eval_set_is_fixed_and_differs_between_splits(name):
    task = build_task(name, SMALL.get(name))
    val, again, test = task.eval_set(8), task.eval_set(8, "val"), task.eval_set(8, "test")
    assert torch.equal(val.inputs, again.inputs) and torch.equal(val.targets, again.targets)
    assert not torch.equal(val.inputs, test.inputs)
    fresh = build_task(name, SMALL.get(name))  # another task object, the same rows
    assert torch.equal(fresh.eval_set(8).inputs, val.inputs)
    with pytest.raises(ValueError, match="split must be 'val' or 'test', got 'train'"):
        task.eval_set(8, "train")


def test_answer_text_joins_the_answer_ints_by_default():
    assert build_task("digits", {"source": "small"}).answer_text(torch.tensor([7])) == "7"
    assert build_task("copy").answer_text(torch.tensor([4, 0, 12])) == "4 0 12"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_task_fits_its_spec(name):
    task = build_task(name, SMALL.get(name))
    spec, batch = task.spec, task.sample(5, torch.Generator().manual_seed(0))
    if spec.eos_id is not None:  # answers of any length: cut to the batch's longest, EOS then PAD
        assert len(batch) == 5 and batch.targets.shape[1] <= spec.answer_len and batch.inputs.shape[1] <= spec.seq_len
        assert batch.targets.max() < spec.num_outputs and ((batch.targets == spec.eos_id).sum(1) == 1).all()
        if spec.tokens:  # a sentence to translate
            assert batch.inputs.max() < spec.vocab_size and "target:" in task.render(batch)
        else:  # vectors to describe (a captioning task's annotation vectors), scored against references
            assert batch.inputs.shape[1:] == (spec.seq_len, spec.input_features) and batch.inputs.is_floating_point()
            assert "references:" in task.render(batch)
        return
    assert len(batch) == 5 and batch.targets.shape[:2] == (5, spec.answer_len)
    if spec.image:  # images (b, c, y, x), one class each
        assert batch.inputs.shape == (5, *spec.image) and batch.inputs.is_floating_point()
        assert batch.targets.dtype == torch.long and batch.targets.max() < spec.num_outputs
    elif spec.tokens:
        assert batch.inputs.shape == (5, spec.seq_len) and batch.inputs.dtype == torch.long
        assert 0 <= batch.inputs.min() and batch.inputs.max() < spec.vocab_size
        assert batch.targets.dtype == torch.long and (batch.targets != PAD).all()
        assert batch.targets.max() < spec.num_outputs == spec.vocab_size
        assert len(task.token_names()) == spec.vocab_size and task.token_names()[PAD] == "_"
    else:
        assert batch.inputs.shape == (5, spec.seq_len, spec.input_features)
        assert batch.inputs.is_floating_point() and batch.targets.is_floating_point()
        if batch.targets.dim() == 3:  # several outputs per answer (bits)
            assert batch.targets.shape[2] == spec.num_outputs
    assert "answer:" in task.render(batch)


def test_batch_rows_and_cat():
    batch = Batch(torch.arange(12).view(4, 3), torch.arange(4).view(4, 1))
    picked = batch.rows(torch.tensor([2, 0]))
    assert picked.inputs.tolist() == [[6, 7, 8], [0, 1, 2]] and picked.targets.tolist() == [[2], [0]]
    joined = Batch.cat([batch.rows(slice(0, 1)), batch.rows(slice(3, 4))])
    assert joined.targets.tolist() == [[0], [3]] and len(joined) == 2
