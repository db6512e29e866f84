"""Associative recall, induction heads and selective copying: layout, answers by rule, metrics."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.tasks.recall import (
    AssociativeRecall,
    InductionConfig,
    InductionHeads,
    RecallConfig,
    SelectiveCopyConfig,
    SelectiveCopying,
)

SMALL = [
    AssociativeRecall(RecallConfig(num_pairs=3, num_keys=5, num_values=4)),
    InductionHeads(InductionConfig(length=8, symbols=3)),
    SelectiveCopying(SelectiveCopyConfig(length=10, num_tokens=3, symbols=4)),
    AssociativeRecall(RecallConfig(num_pairs=4, num_keys=6, num_values=5, num_queries=3, seq_len=16)),
    AssociativeRecall(RecallConfig(num_pairs=4, num_keys=6, num_values=5, num_queries=4, min_pairs=1)),
]


def draw(task, seed, size=16):
    return task.sample(size, torch.Generator().manual_seed(seed))


def confident(targets: torch.Tensor, classes: int) -> torch.Tensor:
    return F.one_hot(targets, classes).float() * 50.0  # (b, n, classes)


@pytest.mark.parametrize("task", SMALL, ids=lambda t: type(t).__name__)
def test_same_seed_same_batch_other_seed_other_batch(task):
    a, b, c = draw(task, 1), draw(task, 1), draw(task, 2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize("task", SMALL, ids=lambda t: type(t).__name__)
def test_shapes_match_spec(task):
    spec, batch = task.spec, draw(task, 0)
    assert batch.inputs.shape == (16, spec.seq_len) and batch.targets.shape == (16, spec.answer_len)
    assert batch.inputs.dtype == batch.targets.dtype == torch.long
    assert batch.inputs.max() < spec.vocab_size and spec.num_outputs == spec.vocab_size
    assert len(task.token_names()) == spec.vocab_size


def test_default_sizes():
    assert (AssociativeRecall().spec.seq_len, AssociativeRecall().spec.vocab_size) == (18, 34)
    assert (InductionHeads().spec.seq_len, InductionHeads().spec.vocab_size) == (64, 18)
    spec = SelectiveCopying().spec
    assert (spec.seq_len, spec.answer_len, spec.vocab_size) == (73, 8, 12)


def test_associative_recall_answers_the_value_of_the_queried_key():
    task = SMALL[0]
    keys, values = range(2, 7), range(7, 11)
    batch = draw(task, 4, size=200)
    asked = set()
    for row, answer in zip(batch.inputs.tolist(), batch.targets.tolist()):
        pair_keys, pair_values = row[0:6:2], row[1:6:2]
        assert len(set(pair_keys)) == 3 and all(k in keys for k in pair_keys)
        assert all(v in values for v in pair_values)
        assert row[6] == task.QUERY and row[7] in pair_keys
        position = pair_keys.index(row[7])
        assert answer == [pair_values[position]]
        asked.add(position)
    assert asked == {0, 1, 2}  # every pair gets asked about


def test_associative_recall_token_names_keep_keys_and_values_apart():
    names = AssociativeRecall(RecallConfig(num_pairs=2, num_keys=2, num_values=3)).token_names()
    assert names == ["_", "?", "a", "b", "0", "1", "2"]


def test_induction_heads_answers_what_followed_the_trigger():
    task = SMALL[1]
    batch = draw(task, 5, size=300)
    positions = set()
    for row, answer in zip(batch.inputs.tolist(), batch.targets.tolist()):
        where = [i for i, tok in enumerate(row) if tok == task.TRIGGER]
        assert len(where) == 2 and where[1] == len(row) - 1  # once inside, once at the end
        p = where[0]
        assert p <= len(row) - 3 and answer == [row[p + 1]] and answer[0] != task.TRIGGER
        positions.add(p)
    assert positions == set(range(0, 6))  # every allowed position, 0 .. t - 3


def test_selective_copying_answers_the_data_in_order():
    task = SMALL[2]
    batch = draw(task, 6, size=200)
    for row, answer in zip(batch.inputs.tolist(), batch.targets.tolist()):
        region = row[:10]
        data = [tok for tok in region if tok != task.NOISE]
        assert len(data) == 3 and all(task.FIRST_SYMBOL <= tok < task.FIRST_SYMBOL + 4 for tok in data)
        assert answer == data
        assert row[10] == task.SEP and row[11:] == [task.BLANK] * 3
    gaps = {tuple(i for i, tok in enumerate(row[:10]) if tok != task.NOISE) for row in batch.inputs.tolist()}
    assert len(gaps) > 50  # the data positions vary between examples


def test_metrics_with_one_wrong_answer():
    task = SMALL[0]
    batch = draw(task, 0, size=4)
    logits = confident(batch.targets, task.spec.num_outputs)
    assert task.loss(logits, batch).item() < 1e-6 and task.metrics(logits, batch)["accuracy"] == 1.0
    wrong = batch.targets.clone()
    wrong[1, 0] = task.QUERY
    metrics = task.metrics(confident(wrong, task.spec.num_outputs), batch)
    assert metrics == {"accuracy": 0.75, "sequence_accuracy": 0.75}

    copying = SMALL[2]
    batch = draw(copying, 0, size=2)
    wrong = batch.targets.clone()
    wrong[0, 2] = copying.NOISE  # one of the 6 answers wrong
    metrics = copying.metrics(confident(wrong, copying.spec.num_outputs), batch)
    assert metrics["accuracy"] == pytest.approx(5 / 6) and metrics["sequence_accuracy"] == 0.5


def test_render():
    task = AssociativeRecall(RecallConfig(num_pairs=2, num_keys=2, num_values=3))
    batch = draw(task, 0, size=1)
    batch.inputs[0] = torch.tensor([3, 4, 2, 6, 1, 2])
    batch.targets[0] = torch.tensor([6])
    assert task.render(batch) == "input: b 0 a 2 ? a\nanswer: 2"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: RecallConfig(num_pairs=0), "num_pairs must be >= 1, got 0"),
        (lambda: RecallConfig(num_pairs=5, num_keys=4), r"num_keys must be >= num_pairs \(5\), got 4"),
        (lambda: RecallConfig(num_values=0), "num_values must be >= 1, got 0"),
        (lambda: RecallConfig(seq_len=17), r"seq_len must be >= 2 \* num_pairs \+ 1 \+ num_queries \(18\), got 17"),
        (
            lambda: RecallConfig(num_pairs=32, num_keys=64, num_values=64, num_queries=32, seq_len=96),
            r"seq_len must be >= 2 \* num_pairs \+ 1 \+ num_queries \(97\), got 96",
        ),
        (lambda: RecallConfig(min_pairs=0), r"min_pairs must be in 1..num_pairs \(8\), got 0"),
        (lambda: RecallConfig(min_pairs=9), r"min_pairs must be in 1..num_pairs \(8\), got 9"),
        (lambda: InductionConfig(length=2), "length must be >= 3, got 2"),
        (lambda: InductionConfig(symbols=0), "symbols must be >= 1, got 0"),
        (lambda: SelectiveCopyConfig(num_tokens=0), "num_tokens must be >= 1, got 0"),
        (lambda: SelectiveCopyConfig(length=4, num_tokens=5), r"num_tokens must be <= length \(4\), got 5"),
    ],
)
def test_config_validation(build, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        build()


def test_multi_query_recall_asks_distinct_keys_and_answers_each():
    task = AssociativeRecall(RecallConfig(num_pairs=4, num_keys=6, num_values=5, num_queries=3))
    assert (task.spec.seq_len, task.spec.answer_len) == (12, 3)
    batch = task.sample(100, torch.Generator().manual_seed(5))
    for row, answers in zip(batch.inputs.tolist(), batch.targets.tolist()):
        table = dict(zip(row[0:8:2], row[1:8:2]))
        assert row[8] == task.QUERY and len(set(row[9:])) == 3
        assert answers == [table[k] for k in row[9:]]
    with pytest.raises(ValueError, match=r"num_queries must be <= num_pairs \(4\), got 5"):
        RecallConfig(num_pairs=4, num_queries=5)


def test_recall_without_filler_draws_the_batches_it_always_drew():
    """seq_len unset (or equal to 2N + 1 + m) changes nothing: the draws of the original layout, in order."""
    for config in (RecallConfig(), RecallConfig(num_pairs=5, num_queries=2), RecallConfig(seq_len=18)):
        task = AssociativeRecall(config)
        batch = draw(task, 3, size=32)
        g = torch.Generator().manual_seed(3)
        n, m = config.num_pairs, config.num_queries
        keys = 2 + torch.rand(32, config.num_keys, generator=g).argsort(dim=-1)[:, :n]  # (b, N)
        values = torch.randint(18, 18 + config.num_values, (32, n), generator=g)  # (b, N)
        asked = torch.rand(32, n, generator=g).argsort(dim=-1)[:, :m]  # (b, m)
        pairs = torch.stack([keys, values], dim=-1).flatten(1)  # (b, 2N)
        expected = torch.cat([pairs, torch.ones(32, 1, dtype=torch.long), keys.gather(1, asked)], dim=1)
        assert torch.equal(batch.inputs, expected) and torch.equal(batch.targets, values.gather(1, asked))
        assert task.spec.vocab_size == 34 and task.filler_id is None and "." not in task.token_names()


def test_mqar_at_scale_fills_between_pairs_and_queries_and_answers_every_query():
    config = RecallConfig(num_pairs=32, num_keys=64, num_values=64, num_queries=32, seq_len=128)
    task = AssociativeRecall(config)
    spec = task.spec
    assert (spec.seq_len, spec.answer_len, spec.vocab_size, config.filler) == (128, 32, 131, 31)
    filler = task.filler_id
    assert filler == 2 + 64 + 64 and task.token_names()[filler] == "." and len(task.token_names()) == 131
    batch = draw(task, 7, size=64)
    assert batch.inputs.shape == (64, 128) and batch.targets.shape == (64, 32)
    for row, answers in zip(batch.inputs.tolist(), batch.targets.tolist()):
        pair_keys, pair_values = row[0:64:2], row[1:64:2]
        assert len(set(pair_keys)) == 32 and all(2 <= k < 66 for k in pair_keys)
        assert all(66 <= v < 130 for v in pair_values)
        assert row[64:95] == [filler] * 31 and row[95] == task.QUERY
        queries = row[96:]
        assert len(set(queries)) == 32  # every key asked once, in some order
        table = dict(zip(pair_keys, pair_values))
        assert answers == [table[k] for k in queries]
    assert filler not in batch.targets  # the filler is never an answer


def test_filler_only_where_asked():
    task = SMALL[3]
    assert task.config.filler == 4 and task.spec.seq_len == 16
    batch = draw(task, 2, size=50)
    fill = batch.inputs == task.filler_id  # (b, t)
    assert fill[:, 8:12].all() and fill.sum() == 50 * 4
    assert (batch.inputs[:, 12] == task.QUERY).all()


def test_mixture_of_sizes_left_pads_short_examples_and_asks_every_pair():
    cfg = RecallConfig(num_pairs=4, num_keys=6, num_values=5, num_queries=3, seq_len=14, min_pairs=1)
    task = AssociativeRecall(cfg)
    filler = task.filler_id
    assert filler == 2 + 6 + 5 and cfg.filler == 2
    batch = task.sample(400, torch.Generator().manual_seed(3))
    counts = set()
    for row, answers in zip(batch.inputs.tolist(), batch.targets.tolist()):
        pad = next(i for i, token in enumerate(row) if token != 0)  # PAD on the left only
        body = row[pad:]
        n = (len(body) - 1 - 3 - body.count(filler)) // 2
        counts.add(n)
        assert len(body) == 2 * n + 2 * n // 4 + 1 + 3  # n pairs, floor(F n / N) filler, "?", 3 queries
        table = dict(zip(body[0 : 2 * n : 2], body[1 : 2 * n : 2]))
        assert len(table) == n and all(2 <= k < 8 for k in table) and all(8 <= v < 13 for v in table.values())
        assert body[2 * n : -4] == [filler] * (2 * n // 4) and body[-4] == task.QUERY
        queries = body[-3:]
        assert answers == [table[q] for q in queries]
        assert len(set(queries[:n])) == min(n, 3)  # each of the n keys is asked once before any again
    assert counts == {1, 2, 3, 4}
    full = task.sample(400, torch.Generator().manual_seed(3)).inputs
    assert (full[:, 0] != 0).any() and (full == 0).any()  # some examples are whole, some padded


def test_mixture_validates_and_tests_on_the_full_pair_count():
    full = RecallConfig(num_pairs=4, num_keys=6, num_values=5, num_queries=3, seq_len=14)
    mixed = AssociativeRecall(RecallConfig(**{**full.__dict__, "min_pairs": 2}))
    for split in ("val", "test"):
        got, want = mixed.eval_set(50, split), AssociativeRecall(full).eval_set(50, split)
        assert torch.equal(got.inputs, want.inputs) and torch.equal(got.targets, want.targets)
    assert mixed.spec == AssociativeRecall(full).spec
