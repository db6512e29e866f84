"""attnlab.train.examples: a run's model on a few test examples, under capture."""

import pytest
import torch

from attnlab.train import resolve, train
from attnlab.train.examples import traced_examples
from attnlab.train.run import load_run


def test_traced_examples_records_the_attention_of_an_eval_forward(tmp_path):
    config = resolve({"task": {"name": "copy", "length": 4}, "model": {"name": "transformer"}},
                     {"train": {"steps": 1, "eval_every": 1, "eval_size": 8}})
    train(config, tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    run.model.train()
    seen = traced_examples(run, 3)
    assert not run.model.training
    assert len(seen.data) == 3 and seen.logits.shape[:2] == (3, run.task.spec.answer_len)
    assert seen.trace.kinds() == ["self"]
    assert len(seen.trace) == run.config.model_config.num_layers
    assert not any(r.weights.requires_grad for r in seen.trace)
    with torch.no_grad():
        torch.testing.assert_close(seen.logits, run.model(run.task.eval_set(3, "test").inputs))


def test_traced_examples_in_chunks_records_every_call_and_joins_the_logits(tmp_path):
    config = resolve({"task": {"name": "copy", "length": 4}, "model": {"name": "transformer"}},
                     {"train": {"steps": 1, "eval_every": 1, "eval_size": 8}})
    train(config, tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    whole = traced_examples(run, 5)
    parts = traced_examples(run, 5, chunk=2)
    torch.testing.assert_close(parts.logits, whole.logits)
    layers = run.config.model_config.num_layers
    assert len(parts.trace) == 3 * layers  # calls of 2, 2 and 1 examples
    assert [r.weights.shape[0] for r in parts.trace.records[::layers]] == [2, 2, 1]
    with pytest.raises(ValueError, match="chunk must be >= 1, got 0"):
        traced_examples(run, 5, chunk=0)
