"""The memory families: the (m, s, q) reshape, refusing specs without a layout, overfitting bAbI rows
(every family, lstm and transformer too), and memn2n's linear start run by the training loop."""

import pytest
import torch

import attnlab.models.memory  # noqa: F401  (registers memn2n and kvmemnn)
from attnlab.config import to_dict
from attnlab.errors import ConfigError
from attnlab.memory import KVMemNN, KVMemNNConfig, MemN2N, MemN2NConfig
from attnlab.models.memory import split_layout
from attnlab.models.registry import MODELS, build_model
from attnlab.spec import PAD, TaskSpec
from attnlab.tasks import build_task
from attnlab.train import load_run, resolve, train
from attnlab.train.checkpoint import read_metrics
from batches import fit

SPEC = TaskSpec(seq_len=4 * 3 + 2, answer_len=1, vocab_size=9, num_outputs=9, layout=(4, 3, 2))


def flat_rows(generator, b=5, m=4, s=3, q=2, vocab=9):
    story = torch.randint(1, vocab, (b, m, s), generator=generator)  # (b, m, s)
    story[:, :2] = PAD  # two empty sentences in front, as the task pads a short story
    story[:, 2, 1:] = PAD  # a one-word sentence
    question = torch.randint(1, vocab, (b, q), generator=generator)  # (b, q)
    return story, question, torch.cat([story.flatten(1), question], 1)  # (b, m*s + q)


def test_split_layout_round_trip():
    story, question, inputs = flat_rows(torch.Generator().manual_seed(0))
    got_story, mask, got_question = split_layout(inputs, (4, 3, 2))
    assert torch.equal(got_story, story) and torch.equal(got_question, question)
    assert mask.tolist() == [[False, False, True, True]] * 5
    assert torch.equal(torch.cat([got_story.flatten(1), got_question], 1), inputs)
    with pytest.raises(ValueError, match=r"layout \(4, 3, 3\) needs m\*s \+ q = 15"):
        split_layout(inputs, (4, 3, 3))


@pytest.mark.parametrize("name", ["memn2n", "kvmemnn"])
def test_family_refuses_a_spec_without_a_layout(name):
    plain = TaskSpec(seq_len=14, answer_len=1, vocab_size=9, num_outputs=9)
    with pytest.raises(ValueError, match=rf"{name}: needs a task with TaskSpec.layout = \(m, s, q\); got layout \(\)"):
        build_model(name, {}, plain)
    wrong = TaskSpec(seq_len=13, answer_len=1, vocab_size=9, num_outputs=9, layout=(4, 3, 2))
    with pytest.raises(ValueError, match="gives 14 positions; seq_len 13"):
        build_model(name, {}, wrong)
    two_answers = TaskSpec(seq_len=14, answer_len=2, vocab_size=9, num_outputs=9, layout=(4, 3, 2))
    with pytest.raises(ValueError, match="one answer over the vocabulary"):
        build_model(name, {}, two_answers)


@pytest.mark.parametrize("name", ["memn2n", "kvmemnn"])
def test_family_is_the_memory_network_on_the_reshaped_rows(name):
    torch.manual_seed(0)
    model = build_model(name, {"embed_dim": 8}, SPEC).eval()
    assert MODELS.summary(name) and "\n" not in MODELS.summary(name)
    assert model.memory.memory_size == 4 and model.memory.vocab_size == 9  # memory_size 0 = the task's m
    assert model.config == model.memory.config and model.config.memory_size == 0
    story, question, inputs = flat_rows(torch.Generator().manual_seed(1))
    logits = model(inputs)
    assert logits.shape == (5, 1, 9)
    torch.testing.assert_close(logits[:, 0], model.memory(story, question, (story != PAD).any(-1)))


@pytest.mark.parametrize("name, network, config", [("memn2n", MemN2N, MemN2NConfig), ("kvmemnn", KVMemNN, KVMemNNConfig)])
def test_family_registers_the_networks_own_config(name, network, config):
    assert MODELS.get(name).Config is config and MODELS.defaults(name) == {"memory_size": 0}
    model = build_model(name, {}, SPEC)
    assert isinstance(model.memory, network) and model.config == config(memory_size=0)
    assert build_model(name, {"memory_size": 2}, SPEC).memory.memory_size == 2
    assert build_model(name, to_dict(model.config), SPEC).config == model.config  # the round trip of a run


def test_family_configs_check_their_fields():
    with pytest.raises(ConfigError, match="hops must be >= 1"):
        build_model("memn2n", {"hops": 0}, SPEC)
    with pytest.raises(ConfigError, match="memory_size must be >= 0"):
        build_model("kvmemnn", {"memory_size": -1}, SPEC)
    with pytest.raises(ConfigError, match="linear_start_patience must be >= 0, got -1"):
        build_model("memn2n", {"linear_start_patience": -1}, SPEC)
    with pytest.raises(ConfigError, match="values must be one of"):
        build_model("kvmemnn", {"values": "words"}, SPEC)
    with pytest.raises(ConfigError, match=r"unknown key model.vocab_size"):
        build_model("memn2n", {"vocab_size": 9}, SPEC)  # the task's, never a config field


def test_memn2n_overfits_a_few_generated_questions_through_the_task():
    task = build_task("babi", {"tasks": "1,2", "generated_stories": 10, "memory_size": 10})
    batch = task.sample(16, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model("memn2n", {"embed_dim": 32}, task.spec)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        loss = task.loss(model(batch.inputs), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert task.metrics(model(batch.inputs), batch)["accuracy"] == 1.0


@pytest.mark.parametrize("name, values", [("kvmemnn", {"embed_dim": 32}),
                                          ("lstm", {"embed_dim": 32, "hidden_dim": 64, "num_layers": 1}),
                                          ("transformer", {"embed_dim": 32, "num_heads": 2, "num_layers": 1})])
def test_other_families_overfit_a_few_generated_questions_through_the_task(name, values):
    task = build_task("babi", {"tasks": "1,2", "generated_stories": 10, "memory_size": 6})
    batch = task.sample(12, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model(name, values, task.spec)
    fit(lambda: task.loss(model(batch.inputs), batch), model.parameters(), steps=400, lr=3e-3, stop=0.01)
    model.eval()
    assert task.metrics(model(batch.inputs), batch)["accuracy"] == 1.0


# -- linear start as a schedule of the training loop ----------------------------------------------


def ls_config(**model):
    return resolve({"task": {"name": "babi", "tasks": "1,2", "generated_stories": 10, "memory_size": 8},
                    "model": {"name": "memn2n", "embed_dim": 8, "linear_start": True, **model},
                    "train": {"steps": 8, "eval_every": 2, "eval_size": 32, "batch_size": 8, "device": "cpu"}})


def test_linear_start_ends_when_the_val_loss_stalls():
    model = build_model("memn2n", {"linear_start": True, "linear_start_patience": 2}, SPEC)
    phases = [model.on_eval(step, {"loss": loss})["linear_start"]
              for step, loss in zip(range(2, 12, 2), [1.0, 0.9, 0.95, 0.8, 0.85])]
    assert phases == [1.0, 1.0, 1.0, 1.0, 1.0] and model.memory.linear_start  # each stall was followed by a new low
    assert model.on_eval(12, {"loss": 0.81}) == {"linear_start": 0.0}  # second evaluation above 0.8 in a row
    assert not model.memory.linear_start and model.on_eval(14, {"loss": 9.0}) == {"linear_start": 0.0}
    never = build_model("memn2n", {"linear_start": True, "linear_start_patience": 0}, SPEC)
    assert all(never.on_eval(s, {"loss": 1.0})["linear_start"] == 1.0 for s in range(2, 40, 2))
    plain = build_model("memn2n", {}, SPEC)
    assert plain.on_eval(2, {"loss": 1.0}) == {"linear_start": 0.0}


def test_loop_runs_the_schedule_and_records_the_phase(tmp_path):
    summary = train(ls_config(linear_start_steps=4, linear_start_patience=0), tmp_path / "run", progress=False)
    phases = [(r["step"], r["linear_start"]) for r in read_metrics(tmp_path / "run") if r["split"] == "val"]
    assert phases == [(2, 1.0), (4, 0.0), (6, 0.0), (8, 0.0)] and summary["step"] == 8
    run = load_run(tmp_path / "run")
    assert run.model.memory.linear_start is False  # the saved weights carry the phase


@pytest.mark.parametrize("stop_after", [2, 4, 6])  # before, at and after the end of the LS phase
def test_resume_continues_the_schedule_exactly(tmp_path, stop_after):
    config = ls_config(linear_start_steps=4, linear_start_patience=1)
    train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "parts", progress=False, stop_after=stop_after)
    train(config, tmp_path / "parts", resume=True, progress=False)
    whole, parts = load_run(tmp_path / "whole").model.state_dict(), load_run(tmp_path / "parts").model.state_dict()
    assert whole.keys() == parts.keys() and "memory.linear_phase" in whole and "ls_stalls" in whole
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=0, atol=0, msg=key)
    records = [r for r in read_metrics(tmp_path / "parts") if r["split"] == "val"]
    assert [r["linear_start"] for r in records] == [1.0, 0.0, 0.0, 0.0]


def test_a_resumed_run_that_forgot_the_phase_would_differ(tmp_path):
    """The check above can fail: restarting in the LS phase after it ended changes the weights."""
    config = ls_config(linear_start_steps=4, linear_start_patience=1)
    train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "parts", progress=False, stop_after=4)
    forget = ls_config(linear_start_steps=0, linear_start_patience=0)  # LS stays on for good
    train(forget.replace("train", steps=4), tmp_path / "forget", progress=False)
    train(forget, tmp_path / "forget", resume=True, progress=False)
    whole, other = load_run(tmp_path / "whole").model, load_run(tmp_path / "forget").model
    assert not torch.equal(whole.memory.embeddings[0].weight, other.memory.embeddings[0].weight)
