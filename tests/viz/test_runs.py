from types import SimpleNamespace

import pytest
import torch
from torch import nn

from attnlab.core import Trace, Traced
from attnlab.errors import ConfigError
from attnlab.tasks import build_task
from attnlab.viz.runs import DRAWERS, draw_run, merge_steps, stacks_from_trace


def test_merge_steps_rebuilds_the_matrix_of_a_cached_decode():
    full = torch.rand(2, 3, 5, 5).tril()  # (b, h, i, j) causal weights
    prompt = full[:, :, :3, :3]  # the prompt pass: 3 queries over 3 keys
    steps = [prompt] + [full[:, :, i : i + 1, : i + 1] for i in (3, 4)]  # one query per decoding step
    assert torch.equal(merge_steps(steps), full)


def test_stacks_keep_encoder_and_decoder_apart():
    trace = Trace()
    trace.record("net.encoder.layers.0.self_attn", "self", torch.rand(1, 2, 4, 4))
    trace.record("net.encoder.layers.1.self_attn", "self", torch.rand(1, 2, 4, 4))
    for step in range(3):
        trace.record("net.decoder.layers.0.self_attn", "self", torch.rand(1, 2, 1, step + 1))
        trace.record("net.decoder.layers.0.cross_attn", "cross", torch.rand(1, 2, 1, 4))
    stacks = stacks_from_trace(trace)
    assert list(stacks) == ["net.encoder self", "net.decoder self", "net.decoder cross"]
    assert [tuple(w.shape) for w in stacks["net.encoder self"]] == [(1, 2, 4, 4)] * 2
    assert tuple(stacks["net.decoder self"][0].shape) == (1, 2, 3, 3)
    assert tuple(stacks["net.decoder cross"][0].shape) == (1, 2, 3, 4)


@pytest.mark.parametrize("model", ["encdec", "lm"])
def test_draw_run_for_decoding_families(tmp_path, model):
    from attnlab.train import load_run, resolve, train
    from attnlab.viz.runs import draw_run

    config = resolve({"task": {"name": "copy", "length": 3}, "model": {"name": model}},
                     {"train": {"steps": 2, "eval_every": 2, "eval_size": 4, "batch_size": 4, "device": "cpu"}})
    train(config, tmp_path / "run", progress=False)
    paths = draw_run(load_run(tmp_path / "run"), tmp_path / "viz", examples=1)
    pngs = [p for p in paths if p.suffix == ".png"]
    assert len(pngs) == (3 if model == "encdec" else 1)
    assert all(p.stat().st_size > 1000 for p in pngs)
    assert "answer:" in (tmp_path / "viz" / "examples.txt").read_text()


def test_draw_run_on_float_inputs_labels_positions(tmp_path):
    from attnlab.train import load_run, resolve, train
    from attnlab.viz.runs import draw_run

    config = resolve({"task": {"name": "adding", "length": 6}, "model": {"name": "transformer", "num_layers": 1}},
                     {"train": {"steps": 2, "eval_every": 2, "eval_size": 4, "batch_size": 4, "device": "cpu"}})
    train(config, tmp_path / "run", progress=False)
    paths = draw_run(load_run(tmp_path / "run"), tmp_path / "viz", examples=1)
    assert [p.suffix for p in paths] == [".png", ".txt"]


class Recorder(Traced, nn.Module):
    """A stand-in model that records planted weights of one kind (or nothing) and answers zeros."""

    def __init__(self, kind, spec):
        super().__init__()
        self.kind, self.spec = kind, spec

    def forward(self, x):
        b, t = x.shape
        if self.kind == "memory":  # two hops over the memory slots, (b, 1, 1, m)
            m = self.spec.layout[0]
            for hop in range(2):
                self.record("memory", torch.arange(m, dtype=torch.float).add(hop).softmax(0).expand(b, 1, 1, m), hop=hop)
        elif self.kind is not None:  # one head over the inputs, (b, 1, t, t)
            self.record(self.kind, torch.full((b, 1, t, t), 1.0 / t))
        return torch.zeros(b, 1, self.spec.num_outputs)  # (b, n, o)


def fake_run(kind, family):
    task = build_task("babi", {"tasks": "1,2", "generated_stories": 10, "memory_size": 8})
    return SimpleNamespace(task=task, model=Recorder(kind, task.spec),
                           config=SimpleNamespace(model=family, task="babi"))


@pytest.mark.parametrize("family", ["transformer", "ntm"])
def test_draw_run_draws_what_the_trace_recorded_whatever_the_family(tmp_path, family):
    paths = draw_run(fake_run("memory", family), tmp_path / "hops", examples=2)
    assert [p.name for p in paths] == ["memory-hops-example0.png", "memory-hops-example1.png", "examples.txt"]
    assert paths[-1].read_text().count("question: where is") == 2
    paths = draw_run(fake_run("self", "memn2n"), tmp_path / "heads", examples=2)
    assert [p.name for p in paths] == ["self-example0.png", "self-example1.png", "examples.txt"]
    assert all(p.stat().st_size > 1000 for p in paths[:2])


@pytest.mark.parametrize("kind", [None, "unheard-of"])
def test_draw_run_without_a_drawable_kind_is_a_config_error(tmp_path, kind):
    assert kind not in DRAWERS
    with pytest.raises(ConfigError, match=r"^model 'memn2n' has no attention to draw; try a transformer"):
        draw_run(fake_run(kind, "memn2n"), tmp_path / "viz")
    assert not (tmp_path / "viz").exists()
