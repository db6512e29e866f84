import json
import os
import signal
import subprocess
import sys
import time

import pytest
import safetensors.torch
import torch
from torch import nn

from attnlab.errors import RunError
from attnlab.train import checkpoint, load_run, resolve, train


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.txt"
    checkpoint.write_text(path, "old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        checkpoint.atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_new_run_dir_rules(tmp_path):
    checkpoint.check_new_run_dir(tmp_path / "new")
    checkpoint.check_new_run_dir(tmp_path)  # empty
    (tmp_path / "x").write_text("x")
    with pytest.raises(RunError, match="is not empty"):
        checkpoint.check_new_run_dir(tmp_path)
    with pytest.raises(RunError, match="is not a folder"):
        checkpoint.check_new_run_dir(tmp_path / "x")
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.save_config(run, {"task": {"name": "copy"}})
    with pytest.raises(RunError, match="holds a run"):
        checkpoint.check_new_run_dir(run)


def test_metrics_append_read_and_truncate(tmp_path):
    for step in (10, 20, 30):
        checkpoint.append_metrics(tmp_path, {"step": step, "split": "val", "accuracy": step / 100})
    checkpoint.append_metrics(tmp_path, {"step": 30, "split": "test"})
    checkpoint.truncate_metrics(tmp_path, 20)
    assert [r["step"] for r in checkpoint.read_metrics(tmp_path)] == [10, 20]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{oops\n')
    with pytest.raises(RunError, match="line 2 is not JSON"):
        checkpoint.read_metrics(tmp_path)


def test_trainer_state_round_trips_without_pickle(tmp_path):
    tensors = {"a": torch.arange(6.0).view(2, 3), "rng": torch.get_rng_state()}
    checkpoint.save_trainer(tmp_path, tensors, {"step": 7, "best": None})
    loaded, state = checkpoint.load_trainer(tmp_path)
    assert state == {"step": 7, "best": None}
    assert all(torch.equal(tensors[k], loaded[k]) for k in tensors)
    (tmp_path / "trainer.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(RunError, match="corrupt trainer state"):
        checkpoint.load_trainer(tmp_path)
    with pytest.raises(RunError, match="nothing to resume from"):
        checkpoint.load_trainer(tmp_path / "elsewhere")


def test_weights_round_trip_with_tied_parameters(tmp_path):
    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    model[1].weight = model[0].weight
    checkpoint.save_weights(tmp_path, model)
    other = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    other[1].weight = other[0].weight
    checkpoint.load_weights(tmp_path, other)
    assert torch.equal(other[0].weight, model[0].weight)


def test_a_last_line_cut_short_by_a_kill_is_left_out(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "spl')
    assert checkpoint.read_metrics(tmp_path) == [{"step": 1}]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "spl\n')  # complete lines must parse
    with pytest.raises(RunError, match="line 2 is not JSON"):
        checkpoint.read_metrics(tmp_path)


def test_metrics_are_strict_json(tmp_path):
    checkpoint.append_metrics(tmp_path, {"loss": float("nan"), "more": [float("inf"), 1.5], "step": 3})
    line = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in {line}")) == {
        "loss": None,
        "more": [None, 1.5],
        "step": 3,
    }


def test_a_second_writer_is_told_the_holders_pid(tmp_path):
    with checkpoint.lock(tmp_path), pytest.raises(RunError, match=f"process {os.getpid()} is writing"):  # noqa: SIM117
        with checkpoint.lock(tmp_path):  # the second lock is the call under test
            pass
    with checkpoint.lock(tmp_path):  # released at the end of the block
        pass


def test_a_lock_dies_with_its_process(tmp_path):
    ready, done = tmp_path / "ready", tmp_path / "done"
    code = (
        "import sys, time, pathlib; from attnlab.train import checkpoint\n"
        "with checkpoint.lock(pathlib.Path(sys.argv[1])):\n"
        "    pathlib.Path(sys.argv[2]).touch(); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(RunError, match=f"process {holder.pid} is writing"), checkpoint.lock(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with checkpoint.lock(tmp_path):
        done.touch()
    assert done.exists()


def test_temporaries_of_a_killed_write_are_cleaned(tmp_path):
    (tmp_path / ".model.safetensors.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "model.safetensors").write_bytes(b"whole")
    assert [p.name for p in checkpoint.clean_temporaries(tmp_path)] == [".model.safetensors.x1y2.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_run_stopped_before_its_first_checkpoint_is_named_as_such(tmp_path):
    checkpoint.save_config(tmp_path, {"task": {"name": "copy"}})
    with pytest.raises(RunError, match=r"before its first checkpoint .*--resume"):
        checkpoint.check_new_run_dir(tmp_path)
    checkpoint.save_trainer(tmp_path, {"a": torch.zeros(1)}, {"step": 1})
    with pytest.raises(RunError, match=r"holds a run \(continue it with --resume\)"):
        checkpoint.check_new_run_dir(tmp_path)


def test_kept_checkpoints_are_the_last_evaluations_and_average_to_their_mean(tmp_path):
    config = resolve({"task": {"name": "copy", "length": 3}, "model": {"name": "lstm"},
                      "train": {"steps": 8, "eval_every": 2, "eval_size": 8, "batch_size": 4, "device": "cpu",
                                "keep_checkpoints": 3}})
    train(config, tmp_path / "run", progress=False)
    kept = checkpoint.kept_checkpoints(tmp_path / "run")
    assert [step for step, _ in kept] == [4, 6, 8]  # step 2's removed
    model = load_run(tmp_path / "run").model
    assert torch.equal(dict(model.named_parameters())["head.linear.weight"],
                       safetensors.torch.load_file(kept[-1][1])["head.linear.weight"])  # the last is the run's weights
    steps = checkpoint.average_checkpoints(tmp_path / "run", model, last=2)
    assert steps == [6, 8]
    expected = {k: (safetensors.torch.load_file(kept[1][1])[k] + safetensors.torch.load_file(kept[2][1])[k]) / 2
                for k in ("head.linear.weight", "head.linear.bias")}
    for name, value in expected.items():
        torch.testing.assert_close(dict(model.named_parameters())[name], value)
    with pytest.raises(RunError, match=r"3 checkpoint\(s\) kept, 4 asked; train with train.keep_checkpoints=4"):
        checkpoint.average_checkpoints(tmp_path / "run", model, last=4)
    with pytest.raises(RunError, match="0 checkpoint"):
        checkpoint.average_checkpoints(tmp_path / "none", model, last=1)


def test_ship_run_copies_a_finished_run_and_refuses_an_unfinished_one(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    checkpoint.save_config(folder, {"kind": "attnlab-run", "task": {"name": "copy"}})
    checkpoint.save_weights(folder, nn.Linear(2, 3))
    checkpoint.append_metrics(folder, {"step": 4, "split": "val", "accuracy": 0.5})
    (folder / checkpoint.TRAINER).write_bytes(b"trainer state")
    with pytest.raises(RunError, match="has not finished"):
        checkpoint.ship_run(folder, tmp_path / "shipped")
    assert not (tmp_path / "shipped").exists()
    checkpoint.append_metrics(folder, {"step": 4, "split": "test", "accuracy": 0.5})
    size = checkpoint.ship_run(folder, tmp_path / "shipped")
    shipped = sorted(p.name for p in (tmp_path / "shipped").iterdir())
    assert shipped == sorted([checkpoint.CONFIG, checkpoint.METRICS, checkpoint.WEIGHTS])  # no trainer state
    assert size == sum((tmp_path / "shipped" / name).stat().st_size for name in shipped)
    for name in shipped:
        assert (tmp_path / "shipped" / name).read_bytes() == (folder / name).read_bytes()
