"""Drawing a memory run: story sentences x hops, the data drawn equals the trace, supporting facts marked."""

import torch

import attnlab.models.memory  # noqa: F401  (registers memn2n and kvmemnn)
from attnlab.core import capture
from attnlab.train import load_run, resolve, train
from attnlab.viz.memory import HopFigure, draw_hops, hop_figures
from attnlab.viz.runs import draw_run


def tiny_run(tmp_path, model="memn2n"):
    config = resolve({"task": {"name": "babi", "tasks": "1,2", "generated_stories": 10, "memory_size": 8},
                      "model": {"name": model, "embed_dim": 8, "hops": 2},
                      "train": {"steps": 20, "eval_every": 10, "eval_size": 16, "batch_size": 8, "device": "cpu"}})
    train(config, tmp_path / "run", progress=False)
    return load_run(tmp_path / "run")


def test_draw_run_dispatches_memory_runs_to_the_hop_drawing(tmp_path):
    for model in ("memn2n", "kvmemnn"):
        run = tiny_run(tmp_path / model, model)
        paths = draw_run(run, tmp_path / model / "viz", examples=2)
        assert [p.name for p in paths] == ["memory-hops-example0.png", "memory-hops-example1.png", "examples.txt"]
        assert all(p.stat().st_size > 1000 for p in paths[:2])
        assert "question: where is" in paths[-1].read_text()


def test_drawn_weights_are_the_traced_weights_of_the_story_sentences(tmp_path):
    run = tiny_run(tmp_path)
    figures = hop_figures(run, examples=3)
    data = run.task.eval_set(3, "test")
    with torch.no_grad(), capture(run.model) as trace:
        run.model(data.inputs)
    records = trace.select(kind="memory")
    assert [r.extra["hop"] for r in records] == [0, 1]
    m, s, _ = run.task.spec.layout
    support = run.task.support("test")
    for i, figure in enumerate(figures):
        present = [k for k in range(m) if data.inputs[i, k * s : (k + 1) * s].any()]
        assert list(figure.slots) == present and len(figure.sentences) == len(present)
        for row, slot in enumerate(present):
            for hop, record in enumerate(records):
                assert figure.weights[row, hop] == record.weights[i, 0, 0, slot]
            assert figure.supporting[row] == bool(support[i, slot])
        assert sum(figure.supporting) >= 1  # tasks 1 and 2 always keep their supporting facts in 8 slots
        assert figure.weights.sum(0).sub(1).abs().max() < 1e-5  # softmax over the present sentences


def test_draw_hops_writes_a_figure(tmp_path):
    figure = HopFigure(("mary went to the kitchen", "john took the milk"), (0, 1), torch.tensor([[0.9, 0.2], [0.1, 0.8]]),
                       (True, False), "where is mary", "kitchen", "kitchen")
    path = draw_hops(figure, tmp_path / "a" / "hops.png", title="two hops")
    assert path.stat().st_size > 1000
