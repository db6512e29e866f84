import pytest
import torch

from attnlab.core import capture
from attnlab.errors import ConfigError
from attnlab.memory import DNC, NTM, DNCConfig, NTMConfig
from attnlab.models import MODELS, build_model
from attnlab.tasks import build_task
from attnlab.train import evaluate, load_run, resolve, retarget, train

TINY = {"ntm": {"controller_size": 16, "memory_size": 12, "word_size": 6},
        "dnc": {"controller_size": 16, "memory_size": 12, "word_size": 6, "num_reads": 2}}


@pytest.mark.parametrize("name", sorted(TINY))
def test_machines_answer_at_the_last_steps_and_trace_reads_and_writes(name):
    task = build_task("ntm_copy", {"max_length": 4})
    model = build_model(name, TINY[name], task.spec)
    batch = task.sample(3, torch.Generator().manual_seed(0))
    with capture(model) as trace:
        logits = model(batch.inputs)
    assert logits.shape == (3, 4, 8)
    torch.testing.assert_close(logits, model(batch.inputs))  # traced (the eager step) equals untraced (fast)
    t = task.spec.seq_len
    assert len(trace.select(kind="write")) == t and len(trace.select(kind="read")) == t
    torch.testing.assert_close(model.machine(batch.inputs)[:, -4:], logits)  # the answers are the last steps


@pytest.mark.parametrize("name, machine, config", [("ntm", NTM, NTMConfig), ("dnc", DNC, DNCConfig)])
def test_families_register_the_machines_own_config(name, machine, config):
    task = build_task("ntm_copy", {"max_length": 4})
    model = build_model(name, TINY[name], task.spec)
    assert MODELS.get(name).Config is config and model.config == config(**TINY[name]) and MODELS.defaults(name) == {}
    assert isinstance(model.machine, machine) and model.machine.config is model.config
    assert (model.machine.input_size, model.machine.output_size) == (task.spec.input_features, 8)
    with pytest.raises(ConfigError, match=r"unknown key model.input_size"):
        build_model(name, {"input_size": 9}, task.spec)  # the task's width, never a config field


@pytest.mark.parametrize("name", sorted(TINY))
def test_machines_refuse_token_tasks(name):
    with pytest.raises(ValueError, match="float vectors"):
        build_model(name, TINY[name], build_task("copy").spec)


@pytest.mark.parametrize("name", sorted(TINY))
def test_machines_overfit_a_few_copy_episodes(name):
    torch.manual_seed(0)
    task = build_task("ntm_copy", {"max_length": 3})
    model = build_model(name, TINY[name], task.spec)
    batch = task.sample(4, torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(400):
        loss = task.loss(model(batch.inputs), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if task.metrics(model(batch.inputs), batch)["bit_errors"] == 0 and loss < 0.05:
            break
    metrics = task.metrics(model(batch.inputs), batch)
    assert metrics["bit_errors"] == 0 and metrics["accuracy"] == 1.0


def test_a_trained_machine_runs_on_longer_sequences_than_it_saw(tmp_path):
    config = resolve({"task": {"name": "ntm_copy", "max_length": 3}, "model": {"name": "ntm", **TINY["ntm"]},
                      "train": {"steps": 2, "eval_every": 2, "eval_size": 8, "batch_size": 4}})
    train(config, tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    longer = retarget(run, min_length=10, max_length=10)
    result = evaluate(longer.model, longer.task, longer.task.eval_set(4, "test"))
    assert 0 <= result["bit_errors"] <= 80 and longer.task.spec.seq_len == 22
    # the number of slots is a test-time size too: no weight depends on it
    bigger = retarget(run, model={"memory_size": 40}, min_length=30, max_length=30)
    assert bigger.model.machine.config.memory_size == 40 and run.model.machine.config.memory_size == 12
    batch = bigger.task.eval_set(2, "test")
    assert bigger.model(batch.inputs).shape == (2, 30, 8)
