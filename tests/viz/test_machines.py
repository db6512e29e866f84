import pytest
import torch
from PIL import Image

from attnlab.core import capture
from attnlab.models import build_model
from attnlab.tasks import build_task
from attnlab.viz.machines import draw_lengths, draw_machine, machine_weights


def _traced(name="ntm"):
    task = build_task("ntm_copy", {"max_length": 5})
    sizes = {"controller_size": 8, "memory_size": 10, "word_size": 4}
    model = build_model(name, sizes | ({"num_reads": 2} if name == "dnc" else {}), task.spec).eval()
    batch = task.sample(2, torch.Generator().manual_seed(0))
    with torch.no_grad(), capture(model) as trace:
        logits = model(batch.inputs)
    return task, batch, logits, trace


@pytest.mark.parametrize("name, reads", [("ntm", 1), ("dnc", 2)])
def test_machine_weights_stack_the_steps_of_one_example(name, reads):
    task, _, _, trace = _traced(name)
    weights = machine_weights(trace, "read", example=1)
    assert weights.shape == (reads, 10, task.spec.seq_len)
    assert torch.equal(weights[:, :, 3], trace.select(kind="read")[3].weights[1, :, 0])
    with pytest.raises(ValueError, match="no kind 'glimpse'"):
        machine_weights(trace, "glimpse")


def test_draw_machine_writes_an_image(tmp_path):
    _, batch, logits, trace = _traced()
    path = draw_machine(trace, batch, logits, tmp_path / "m.png", title="t")
    assert Image.open(path).size[1] > 500  # input, answer, prediction, write and read panels


def test_draw_lengths_plots_each_model(tmp_path):
    result = {"task": "ntm_copy", "train": {"max_length": 20}, "key": "length",
              "models": {m: {"tests": {"20": {"bit_errors": 0.1}, "30": {"bit_errors": e}}}
                         for m, e in (("ntm", 0.5), ("lstm", 40.0))}}
    assert draw_lengths(result, tmp_path / "l.png").stat().st_size > 1000


def test_draw_run_draws_an_ntm_runs_weights(tmp_path):
    from attnlab.train import load_run, resolve, train
    from attnlab.viz.runs import draw_run

    config = resolve({"task": {"name": "ntm_copy", "max_length": 3},
                      "model": {"name": "ntm", "controller_size": 8, "memory_size": 8, "word_size": 4},
                      "train": {"steps": 2, "eval_every": 2, "eval_size": 4, "batch_size": 4}})
    train(config, tmp_path / "run", progress=False)
    paths = draw_run(load_run(tmp_path / "run"), tmp_path / "viz", examples=2)
    assert [p.name for p in paths] == ["memory-example0.png", "memory-example1.png", "examples.txt"]
    assert all(p.stat().st_size > 100 for p in paths)
