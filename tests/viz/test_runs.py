import pytest
import torch

from attnlab.core import Trace
from attnlab.viz.runs import merge_steps, stacks_from_trace


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
