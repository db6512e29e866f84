
import pytest
import torch

from attnlab.errors import RunError
from attnlab.train import checkpoint


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
