"""Choosing a step's implementation: paths, set_path, and compiled() with its eager fallback."""

import pytest
import torch
from torch import nn

from attnlab.core import fast


class Stepper(fast.FastPath, nn.Module):
    fast_step_name = "fused test step"

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(2, 2)


def test_set_path_sets_every_fast_module_and_says_what_runs():
    model = nn.Sequential(Stepper(), nn.Linear(2, 2), nn.Sequential(Stepper()))
    assert fast.set_path(model, "compiled") == [
        "0 (Stepper): compiled fused test step",
        "2.0 (Stepper): compiled fused test step",
    ]
    assert model[0].path == model[2][0].path == "compiled"
    assert fast.set_path(model, "eager") == ["0 (Stepper): eager step", "2.0 (Stepper): eager step"]
    assert fast.set_path(nn.Linear(2, 2), "fast") == []  # nothing to choose: no line
    with pytest.raises(ValueError, match=r"path must be one of \('eager', 'fast', 'compiled'\), got 'quick'"):
        fast.set_path(model, "quick")


def test_compiled_falls_back_to_eager_with_one_line_saying_why(monkeypatch, capsys):
    monkeypatch.setenv("ATTNLAB_EAGER", "1")
    monkeypatch.setattr(fast, "FALLBACKS", {})

    def double(x):
        return 2 * x

    run = fast.compiled(double, "test.double")
    assert run is double  # nothing compiled: the function itself
    assert run(torch.ones(2)).tolist() == [2.0, 2.0]
    fast.compiled(double, "test.double")
    assert capsys.readouterr().err == "attnlab: test.double runs eager: ATTNLAB_EAGER is set\n"  # said once


def test_compiled_matches_eager_and_does_not_recompile_for_every_shape(monkeypatch):
    monkeypatch.delenv("ATTNLAB_EAGER", raising=False)
    if fast.why_not_compiled() is not None:
        pytest.skip(f"torch.compile unavailable here: {fast.why_not_compiled()}")
    from torch._dynamo.utils import counters

    def gate(x, w):
        return torch.sigmoid(x @ w) * x.tanh()

    run = fast.compiled(gate, "test.gate")
    w = torch.randn(3, 3)
    before = counters["stats"]["unique_graphs"]
    for batch in (2, 5, 7, 9, 11):
        x = torch.randn(batch, 3)
        torch.testing.assert_close(run(x, w), gate(x, w))
    assert counters["stats"]["unique_graphs"] - before <= 2  # a static graph, then one with the batch symbolic
    assert fast.COMPILE_SECONDS["test.gate"] > 0
    assert fast.seconds_compiling() > 0.5 * fast.COMPILE_SECONDS["test.gate"]  # the same compile, timed inside torch


def test_compiled_steps_use_the_backend_named_in_BACKEND(monkeypatch):
    monkeypatch.delenv("ATTNLAB_EAGER", raising=False)
    if fast.why_not_compiled() is not None:
        pytest.skip(f"torch.compile unavailable here: {fast.why_not_compiled()}")
    graphs = []

    def recording(gm, example_inputs):  # a torch.compile backend: sees each captured graph, runs it as traced
        graphs.append(gm)
        return gm.forward

    monkeypatch.setattr(fast, "BACKEND", recording)
    run = fast.compiled(lambda x: x.sin() + 1, "test.backend")
    x = torch.randn(4)
    torch.testing.assert_close(run(x), x.sin() + 1)
    assert len(graphs) == 1
