"""ListOps: the evaluator on hand-written expressions, LRA's generator rules, the dataset and task."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnlab.errors import ConfigError
from attnlab.spec import PAD
from attnlab.tasks import build_task
from attnlab.tasks.listops import (
    MAX,
    OPERATORS,
    TOKEN_ID,
    VOCAB,
    ListOps,
    ListOpsConfig,
    evaluate,
    generate,
    generate_tree,
    lra_string,
    median,
    parse,
    tokenize,
    tokens,
)

SMALL = ListOpsConfig(train_size=300, val_size=40, test_size=40)


@pytest.mark.parametrize(
    "text, value",
    [
        ("7", 7),
        ("[MIN 3 8 ]", 3),
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MED 1 9 2 ]", 2),
        ("[MED 1 2 3 9 ]", 2),  # median 2.5, integer part 2
        ("[MED 0 9 ]", 4),  # median 4.5
        ("[SM 9 8 7 ]", 4),  # 24 mod 10
        ("[SM [MAX 5 6 ] [MIN 7 8 ] ]", 3),  # 6 + 7 = 13
        ("[MAX [MIN 1 [SM 9 9 ] ] [MED 3 7 8 2 ] 0 ]", 5),  # max(min(1, 8), 5, 0)
        ("( ( ( [MAX 2 ) 9 ) ] )", 9),  # LRA's written form, parentheses and all
    ],
)
def test_evaluate_hand_written_expressions(text, value):
    assert evaluate(parse(text)) == value


def test_median_matches_numpy():
    rng = random.Random(0)
    for _ in range(300):
        values = [rng.randrange(10) for _ in range(rng.randint(1, 9))]
        assert median(values) == int(np.median(values))


def test_parse_rejects_malformed_text():
    for text in ["[MAX 1 2", "1 2", "[MAX 1 ] ]", "[MAX 12 ]", "[AVG 1 2 ]"]:
        with pytest.raises(ValueError):
            parse(text)


def test_lra_string_writes_the_binary_tuple_form():
    tree = parse("[MAX 2 9 [SM 4 7 ] ]")
    assert lra_string(parse("[MAX 2 9 ]")) == "( ( ( [MAX 2 ) 9 ) ] )"
    assert lra_string(tree) == "( ( ( ( [MAX 2 ) 9 ) ( ( ( [SM 4 ) 7 ) ] ) ) ] )"
    assert tokenize(lra_string(tree)) == tokens(tree) == "[MAX 2 9 [SM 4 7 ] ]".split()


def depth_and_arity(tree, depth=1):
    """(deepest level, fewest and most arguments of any operator) of a tree."""
    if isinstance(tree, int):
        return depth, 99, 0
    stats = [depth_and_arity(a, depth + 1) for a in tree[1]]
    count = len(tree[1])
    return max(s[0] for s in stats), min([count] + [s[1] for s in stats]), max([count] + [s[2] for s in stats])


def test_generated_trees_follow_the_rules():
    rng = random.Random(1)
    for _ in range(300):
        tree, length = generate_tree(rng, max_depth=4, max_args=3)
        assert length == len(tokens(tree)) == len(tokenize(lra_string(tree)))
        assert parse(lra_string(tree)) == tree
        deepest, fewest, most = depth_and_arity(tree)
        assert deepest <= 4 and (isinstance(tree, int) or 2 <= fewest <= most <= 3)
    trees = [generate_tree(random.Random(seed), 6, 5)[0] for seed in range(4000)]
    leaves = sum(isinstance(t, int) for t in trees) / len(trees)
    assert leaves == pytest.approx(0.75, abs=0.03)  # the root is a leaf with probability 0.75
    assert all(isinstance(generate_tree(rng, 1, 5)[0], int) for _ in range(50))  # forced at max_depth


def test_dataset_statistics():
    splits = generate(SMALL)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [300, 40, 40]
    rows = [tuple(t) for split in splits.values() for t, _ in split]
    assert len(set(rows)) == len(rows)  # no duplicates, within or across splits
    assert all(20 < len(t) < 128 for t in rows)
    assert {v for split in splits.values() for _, v in split} == set(range(10))
    assert {x for t in rows for x in t if x in OPERATORS} == set(OPERATORS)
    assert all(evaluate(parse(" ".join(t))) == v for split in splits.values() for t, v in split)


def test_dataset_is_fixed_by_its_seed():
    config = ListOpsConfig(train_size=30, val_size=5, test_size=5)
    assert generate(config) == generate(config)
    other = generate(ListOpsConfig(train_size=30, val_size=5, test_size=5, data_seed=1))
    assert other["train"] != generate(config)["train"]


def test_impossible_sizes_stop_with_an_error():
    # depth 2, two arguments: only 4 operators x 100 digit pairs = 400 distinct trees of length 4
    config = ListOpsConfig(max_depth=2, max_args=2, min_length=3, max_length=5, train_size=400, val_size=1, test_size=1)
    with pytest.raises(RuntimeError, match="no new tree in 3000 draws after 400 of 402"):
        generate(config, patience=3000)


def test_task_rows_are_left_padded_tokens_with_digit_answers():
    task = ListOps(SMALL)
    spec = task.spec
    assert (spec.seq_len, spec.answer_len, spec.vocab_size, spec.num_outputs) == (127, 1, 16, 16)
    names, train = task.token_names(), task.splits()["train"]
    assert names == VOCAB and len(set(names)) == len(names)
    assert train.inputs.shape == (300, 127) and train.targets.shape == (300, 1)
    for row, answer in zip(train.inputs.tolist(), train.targets.tolist()):
        start = next(i for i, tok in enumerate(row) if tok != PAD)
        assert PAD not in row[start:]  # padding on the left only
        text = " ".join(names[tok] for tok in row[start:])
        assert answer == [TOKEN_ID[str(evaluate(parse(text)))]]


def test_sample_draws_training_rows_deterministically():
    task = ListOps(SMALL)
    a = task.sample(8, torch.Generator().manual_seed(0))
    b = task.sample(8, torch.Generator().manual_seed(0))
    c = task.sample(8, torch.Generator().manual_seed(1))
    assert torch.equal(a.inputs, b.inputs) and not torch.equal(a.inputs, c.inputs)
    train = {tuple(r) for r in task.splits()["train"].inputs.tolist()}
    assert all(tuple(r) in train for r in a.inputs.tolist())


def test_eval_set_is_the_start_of_a_split():
    task = ListOps(SMALL)
    val = task.eval_set(10)
    assert torch.equal(val.inputs, task.splits()["val"].inputs[:10])
    assert torch.equal(task.eval_set(10, "test").targets, task.splits()["test"].targets[:10])
    assert len(task.eval_set(1000, "test")) == 40  # at most the split's size
    val.inputs.zero_()  # changing a returned set leaves the cached split alone
    assert torch.equal(task.eval_set(10).inputs, task.splits()["val"].inputs[:10])
    assert (task.eval_set(10).inputs != PAD).any()
    with pytest.raises(ValueError, match="split must be 'val' or 'test'"):
        task.eval_set(5, "train")


def test_metrics_and_render():
    task = ListOps(SMALL)
    batch = task.eval_set(4)
    perfect = F.one_hot(batch.targets, 16).float() * 50.0  # (b, 1, 16)
    assert task.loss(perfect, batch).item() < 1e-6 and task.metrics(perfect, batch)["accuracy"] == 1.0
    wrong = batch.targets.clone()
    wrong[0, 0] = TOKEN_ID[MAX]
    assert task.metrics(F.one_hot(wrong, 16).float(), batch)["accuracy"] == 0.75
    batch.inputs[0] = torch.tensor([PAD] * 122 + [TOKEN_ID[x] for x in "[MIN 3 8 ]".split()] + [TOKEN_ID["]"]])
    assert task.render(batch).splitlines()[0] == "input: [MIN 3 8 ] ]"


def test_default_mini_preset_builds():
    task = build_task("listops")
    splits = task.splits()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [20000, 1000, 1000]
    lengths = (splits["train"].inputs != PAD).sum(1)
    assert lengths.min() > 20 and lengths.max() <= task.spec.seq_len == 127


def test_presets_and_overrides():
    full = ListOpsConfig(preset="full").resolved()
    assert full == dict(
        max_depth=10, max_args=10, min_length=500, max_length=2000,
        train_size=96000, val_size=2000, test_size=2000, data_seed=0,
    )
    assert ListOps(ListOpsConfig(preset="full")).spec.seq_len == 1999  # no data is generated for the spec
    assert ListOpsConfig(max_args=3, data_seed=4).resolved()["max_args"] == 3


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(max_depth=0), "max_depth must be >= 1, got 0"),
        (dict(max_args=1), "max_args must be >= 2, got 1"),
        (dict(val_size=0), "val_size must be >= 1, got 0"),
        (dict(min_length=50, max_length=51), r"max_length must be >= min_length \+ 2 \(52\), got 51"),
        (dict(max_depth=2, max_args=3, min_length=5), "min_length must be < 5, the longest tree"),
        (dict(preset="huge"), "preset must be one of full, mini, got 'huge'"),
    ],
)
def test_config_validation(values, message):
    with pytest.raises(ValueError, match=message):
        ListOpsConfig(**values)


def test_build_task_checks_the_preset_name():
    with pytest.raises(ConfigError, match="'huge' is not one of 'mini', 'full'"):
        build_task("listops", {"preset": "huge"})
