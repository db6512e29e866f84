"""The bAbI task: flat (m, s, q) layout and padding, joint vocabulary, splits, errors, generated data."""

import pytest
import torch

from attnlab.errors import ConfigError
from attnlab.spec import PAD
from attnlab.tasks import build_task
from attnlab.tasks.babi import BabiConfig

TWO_STORIES = """\
1 Mary went to the kitchen.
2 John moved to the hallway.
3 Where is Mary?\tkitchen\t1
4 Mary jogged.
5 Where is Mary?\tkitchen\t1
1 Sandra went to the office.
2 Where is Sandra?\toffice\t1
"""
PLACES = ("kitchen", "garden", "office", "hallway", "bathroom")
NAMES = ("mary", "john", "sandra", "daniel")


def write_task(root, number, name, train, test, setting="en"):
    folder = root / "babi" / "tasks_1-20_v1-2" / setting
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"qa{number}_{name}_train.txt").write_text(train)
    (folder / f"qa{number}_{name}_test.txt").write_text(test)
    return root


def distinct_questions(count):
    """count one-sentence stories, no two alike."""
    lines = []
    for i in range(count):
        who, where = NAMES[i % 4], PLACES[i // 4]
        lines += [f"1 {who} went to the {where}.", f"2 Where is {who}?\t{where}\t1"]
    return "\n".join(lines) + "\n"


def words(task, row):
    """A row of ids as its words, "_" for PAD, joined by spaces."""
    names = task.token_names()
    return " ".join(names[int(i)] for i in row)


def test_layout_pads_sentences_on_the_left_and_words_on_the_right(tmp_path):
    root = write_task(tmp_path, 1, "single-supporting-fact", distinct_questions(10), TWO_STORIES)
    task = build_task("babi", {"setting": "en", "data_dir": str(root), "memory_size": 2})
    spec = task.spec
    assert spec.layout == (2, 5, 3) and spec.seq_len == 2 * 5 + 3 and spec.answer_len == 1
    assert spec.vocab_size == spec.num_outputs == len(task.token_names()) and task.token_names()[PAD] == "_"
    test = task.eval_set(10, "test")
    assert test.inputs.shape == (3, 13) and test.inputs.dtype == torch.long
    assert words(task, test.inputs[0]) == "mary went to the kitchen john moved to the hallway where is mary"
    # the most recent m = 2 sentences are kept; "mary jogged" is right-padded to s = 5 words
    assert words(task, test.inputs[1]) == "john moved to the hallway mary jogged _ _ _ where is mary"
    # a story shorter than m starts with an all-PAD sentence
    assert words(task, test.inputs[2]) == "_ _ _ _ _ sandra went to the office where is sandra"
    assert words(task, test.targets[:, 0]) == "kitchen kitchen office"
    text = task.render(test, 2, logits=torch.nn.functional.one_hot(test.targets, spec.vocab_size).float())
    assert text == "1. sandra went to the office\nquestion: where is sandra\nanswer: office\npredicted: office"


def test_one_vocabulary_over_every_task_and_both_files(tmp_path):
    write_task(tmp_path, 1, "single-supporting-fact", distinct_questions(10), TWO_STORIES)
    lists = "1 Fred took the apple.\n2 Fred got the milk.\n3 What is Fred carrying?\tapple,milk\t1 2\n"
    write_task(tmp_path, 8, "lists-sets", lists * 10, "1 Bill is here.\n2 Where is Bill?\tnowhere\t1\n")
    task = build_task("babi", {"setting": "en", "data_dir": str(tmp_path), "tasks": "8,1"})
    names = task.token_names()
    for word in ("apple,milk", "fred", "kitchen", "sandra", "bill", "nowhere"):  # train and test, both tasks
        assert word in names
    assert "apple" in names and len(names) == len(set(names)) == task.spec.vocab_size
    assert task.task_ids("test").tolist() == [1, 8, 1, 1]  # interleaved: row 0 of each task first
    test = task.eval_set(4, "test")
    assert [names[int(t)] for t in test.targets[:, 0]] == ["kitchen", "nowhere", "kitchen", "office"]


def test_validation_is_a_deterministic_tenth_of_train_disjoint_from_it(tmp_path):
    write_task(tmp_path, 1, "single-supporting-fact", distinct_questions(20), TWO_STORIES)
    config = {"setting": "en", "data_dir": str(tmp_path)}
    task, again = build_task("babi", config), build_task("babi", config)
    val = task.eval_set(100, "val")
    assert len(val) == 2 and torch.equal(val.inputs, again.eval_set(100, "val").inputs)
    train = task.data()["train"].inputs.long()
    assert len(train) == 18
    rows = {tuple(r) for r in train.tolist()} | {tuple(r) for r in val.inputs.tolist()}
    assert len(rows) == 20  # disjoint, and together every training question
    reseeded = [build_task("babi", {**config, "seed": s}).eval_set(9) for s in range(1, 6)]
    others = {tuple(r) for other in reseeded for r in other.inputs.tolist()}
    assert others - {tuple(r) for r in val.inputs.tolist()}  # another seed holds out other questions


def test_eval_set_is_a_copy(tmp_path):
    task = build_task("babi", {"generated_stories": 5})
    first = task.eval_set(3, "test")
    first.inputs.fill_(7)
    assert not torch.equal(task.eval_set(3, "test").inputs, first.inputs)


def test_missing_data_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    task = build_task("babi", {"setting": "en", "data_dir": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError) as err:
        _ = task.spec
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "nowhere" / "babi" / "tasks_1-20_v1-2" / "en") in message
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    with pytest.raises(ConfigError, match="ATTNLAB_DATA"):
        build_task("babi", {"setting": "en-10k"}).sample(2, torch.Generator())


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match="setting must be one of"):
        BabiConfig(setting="fr")
    with pytest.raises(ValueError, match="tasks must be comma-separated"):
        BabiConfig(tasks="one")
    with pytest.raises(ValueError, match=r"tasks must lie in .* for setting 'generated', got \[4\]"):
        BabiConfig(tasks="1,4")
    with pytest.raises(ValueError, match="memory_size must be >= 1"):
        BabiConfig(memory_size=0)
    assert BabiConfig(tasks="all", setting="en").task_numbers() == tuple(range(1, 21))
    assert BabiConfig(tasks=" 3, 1").task_numbers() == (1, 3)


def test_generated_setting_needs_no_data_and_reports_error_per_task():
    task = build_task("babi", {"tasks": "1,6", "generated_stories": 20, "memory_size": 6})
    m, s, q = task.spec.layout
    batch = task.sample(8, torch.Generator().manual_seed(0))
    assert m == 6 and batch.inputs.shape == (8, m * s + q) and batch.targets.shape == (8, 1)
    assert torch.equal(batch.inputs, task.sample(8, torch.Generator().manual_seed(0)).inputs)
    test = task.eval_set(1000, "test")
    assert set(task.task_ids("test")[: len(test)].tolist()) == {1, 6}
    logits = torch.nn.functional.one_hot(test.targets, task.spec.vocab_size).float()  # (b, 1, v), all right
    logits[task.task_ids("test") == 6] = 0.0  # argmax 0 = PAD: every task 6 answer wrong
    metrics = task.metrics(logits, test)
    assert metrics["error_qa1"] == 0.0 and metrics["error_qa6"] == 1.0
    assert task.per_task_accuracy(logits, test) == {1: 1.0, 6: 0.0}
    assert "error_qa1" not in task.metrics(logits[:8], batch)  # training rows carry no task ids
    assert "question: is " in task.render(test, 1) or "question: where is " in task.render(test, 1)


def test_supporting_facts_follow_their_sentences_into_memory_slots(tmp_path):
    root = write_task(tmp_path, 1, "single-supporting-fact", distinct_questions(10), TWO_STORIES)
    task = build_task("babi", {"setting": "en", "data_dir": str(root), "memory_size": 2})
    # question 1: fact 1 in slot 0 of 2; question 2: fact 1 was cut off (3 sentences > m = 2);
    # question 3: a one-sentence story sits in the last slot, so its fact 1 is slot 1
    assert task.support("test").tolist() == [[True, False], [False, False], [False, True]]
    test = task.eval_set(3, "test")
    _, s, _ = task.spec.layout
    names = task.token_names()
    row = test.inputs[2].tolist()
    assert " ".join(names[i] for i in row[s : 2 * s] if i != PAD) == "sandra went to the office"
    two_facts = "1 A went to the hallway.\n2 A took the milk.\n3 B went to the office.\n4 Where is the milk?\thallway\t2 1\n"
    write_task(tmp_path, 2, "two-supporting-facts", two_facts * 10, two_facts)
    task = build_task("babi", {"setting": "en", "data_dir": str(root), "tasks": "2", "memory_size": 4})
    assert task.support("test").tolist() == [[False, True, True, False]]  # left-padded by one empty slot


def test_support_attention_counts_argmax_hits_per_hop_and_task():
    weights = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]],  # row 0: hop 1 on slot 0, hop 2 on slot 1
                            [[0.1, 0.1, 0.8], [0.6, 0.3, 0.1]],  # row 1: hop 1 on slot 2, hop 2 on slot 0
                            [[0.5, 0.4, 0.1], [0.5, 0.4, 0.1]],  # row 2: no supporting fact kept: left out
                            [[0.2, 0.2, 0.6], [0.2, 0.2, 0.6]]])  # row 3: task 3, misses both hops
    support = torch.tensor([[False, True, False], [False, False, True], [False, False, False], [True, False, False]])
    task_ids = torch.tensor([2, 2, 2, 3])
    got = build_task("babi", {"generated_stories": 5}).support_attention(weights, support, task_ids)
    expected = {}
    for n in (2, 3):  # the same counts by a loop
        rows = [r for r in range(4) if task_ids[r] == n and support[r].any()]
        hits = [[bool(support[r, int(weights[r, k].argmax())]) for k in range(2)] for r in rows]
        expected[n] = {"hop1": sum(h[0] for h in hits) / len(rows), "hop2": sum(h[1] for h in hits) / len(rows),
                       "any_hop": sum(any(h) for h in hits) / len(rows), "questions": len(rows)}
    assert got == expected == {2: {"hop1": 0.5, "hop2": 0.5, "any_hop": 1.0, "questions": 2},
                               3: {"hop1": 0.0, "hop2": 0.0, "any_hop": 0.0, "questions": 1}}


def test_an_absent_10k_training_file_falls_back_to_the_1k_file(tmp_path):
    write_task(tmp_path, 1, "single-supporting-fact", distinct_questions(10), TWO_STORIES)
    write_task(tmp_path, 2, "two-supporting-facts", distinct_questions(20), TWO_STORIES)
    folder = write_task(tmp_path, 2, "two-supporting-facts", distinct_questions(20), TWO_STORIES, "en-10k")
    (folder / "babi" / "tasks_1-20_v1-2" / "en-10k" / "qa1_single-supporting-fact_test.txt").write_text(TWO_STORIES)
    task = build_task("babi", {"setting": "en-10k", "data_dir": str(tmp_path), "tasks": "1,2"})
    train_rows = len(task.data()["train"].inputs) + len(task.data()["val"].inputs)
    assert task.fallbacks == [1] and train_rows == 10 + 20
    assert set(task.task_ids("test").tolist()) == {1, 2}  # task 1 is still tested
    with pytest.raises(ConfigError, match=r"task 1 .*en.*qa1_\*_test.txt"):
        (folder / "babi" / "tasks_1-20_v1-2" / "en-10k" / "qa1_single-supporting-fact_test.txt").unlink()
        _ = build_task("babi", {"setting": "en-10k", "data_dir": str(tmp_path), "tasks": "1"}).spec


def test_files_without_enough_questions_are_a_data_error_naming_the_file(tmp_path):
    from attnlab.errors import DataError

    folder = tmp_path / "babi" / "tasks_1-20_v1-2" / "en"
    for train, test, named in [
        ("", TWO_STORIES, "qa1_single-supporting-fact_train.txt: no questions"),
        (TWO_STORIES, "1 Mary went to the kitchen.\n", "qa1_single-supporting-fact_test.txt: no questions"),
        ("1 Mary went home.\n2 Where is Mary?\thome\t1\n", TWO_STORIES, "_train.txt: 1 question; a training file"),
    ]:
        write_task(tmp_path, 1, "single-supporting-fact", train, test)
        with pytest.raises(DataError) as err:
            _ = build_task("babi", {"setting": "en", "data_dir": str(tmp_path)}).spec
        assert str(err.value).startswith(str(folder / "qa1")) and named in str(err.value)
