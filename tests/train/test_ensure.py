import json
import re
import shutil

import pytest

from attnlab.errors import RunError
from attnlab.train import checkpoint, ensure, resolve, train


def tiny(steps=4, task=None, model=None, **train_values):
    return resolve(
        {"task": {"name": "copy", "length": 3, **(task or {})}, "model": {"name": "mlp", **(model or {})}},
        {"train": {"steps": steps, "eval_every": 2, "eval_size": 8, "batch_size": 8, "device": "cpu", **train_values}},
    )


def val_steps(folder):
    return [r["step"] for r in checkpoint.read_metrics(folder) if r["split"] == "val"]


def numbers(summary):
    return {k: v for k, v in summary.items() if k != "seconds"}


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_missing_or_empty_folder_is_trained_and_a_finished_run_reused(tmp_path):
    (tmp_path / "empty").mkdir()
    summary = ensure(tiny(), tmp_path / "empty")
    assert summary["split"] == "test" and summary["step"] == 4 and val_steps(tmp_path / "empty") == [2, 4]
    again = ensure(tiny(), tmp_path / "new")
    assert numbers(again) == numbers(summary)  # the same seed, the same numbers
    before = snapshot(tmp_path / "new")
    assert ensure(tiny(), tmp_path / "new") == again
    assert snapshot(tmp_path / "new") == before  # nothing written: reused


def test_a_finished_run_is_reused_without_weights_and_on_another_device(tmp_path):
    summary = ensure(tiny(), tmp_path / "r")
    for name in (checkpoint.WEIGHTS, checkpoint.TRAINER):
        (tmp_path / "r" / name).unlink()  # a results folder keeps config.yaml and metrics.jsonl only
    assert ensure(tiny(device="auto"), tmp_path / "r") == summary
    with pytest.raises(RunError, match=re.escape("without trainer state cannot be continued (train.steps is 4 there, 6 asked)")):
        ensure(tiny(steps=6), tmp_path / "r")


def test_a_run_killed_after_a_checkpoint_ends_like_one_never_killed(tmp_path):
    whole = ensure(tiny(steps=6), tmp_path / "whole")
    train(tiny(steps=6), tmp_path / "killed", progress=False, stop_after=3)  # checkpoint at 2, killed at 3
    assert not [r for r in checkpoint.read_metrics(tmp_path / "killed") if r["split"] == "test"]
    resumed = ensure(tiny(steps=6), tmp_path / "killed")
    assert resumed["step"] == 6 and val_steps(tmp_path / "killed") == [2, 4, 6]
    assert numbers(resumed) == numbers(whole)


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    checkpoint.save_config(folder, tiny(lr=0.5).to_dict())  # what a run writes before its first step
    summary = ensure(tiny(), folder)
    assert summary["step"] == 4 and resolve(checkpoint.load_config(folder)) == tiny()
    assert numbers(summary) == numbers(ensure(tiny(), tmp_path / "fresh"))


def test_more_steps_continue_a_finished_run(tmp_path):
    ensure(tiny(), tmp_path / "r")
    summary = ensure(tiny(steps=6), tmp_path / "r")
    assert summary["step"] == 6 and val_steps(tmp_path / "r") == [2, 4, 6]
    assert [r["split"] for r in checkpoint.read_metrics(tmp_path / "r")].count("test") == 1


def test_a_run_stopped_at_its_target_goes_on_under_a_target_it_has_not_reached(tmp_path):
    stopped = ensure(tiny(steps=6, target=0.0), tmp_path / "r")  # accuracy >= 0: reached at the first evaluation
    assert stopped["stopped_early"] and stopped["step"] == 2
    assert ensure(tiny(steps=6, target=0.0), tmp_path / "r") == stopped  # its own target: reused
    summary = ensure(tiny(steps=6, target=1.5), tmp_path / "r")  # accuracy never reaches 1.5
    assert not summary["stopped_early"] and summary["step"] == 6 and val_steps(tmp_path / "r") == [2, 4, 6]
    lifted = ensure(tiny(steps=4, target=0.0), tmp_path / "lifted")
    assert ensure(tiny(steps=4), tmp_path / "lifted")["step"] == 4 and lifted["step"] == 2


def test_a_run_that_went_past_the_asked_target_or_steps_is_refused(tmp_path):
    ensure(tiny(steps=6), tmp_path / "r")
    before = snapshot(tmp_path / "r")
    with pytest.raises(RunError, match=re.escape("accuracy reached train.target=0.0 at step 2, where a run of this config stops")):
        ensure(tiny(steps=8, target=0.0), tmp_path / "r")
    with pytest.raises(RunError, match=re.escape("has trained 6 steps, more than train.steps=4")):
        ensure(tiny(steps=4), tmp_path / "r")
    assert snapshot(tmp_path / "r") == before


@pytest.mark.parametrize(("other", "message"), [
    (tiny(task={"length": 4}), "task.length is 3 there, 4 asked"),
    (resolve({"task": {"name": "reverse", "length": 3}, "model": {"name": "mlp"}}, {"train": {"steps": 4}}),
     "task.name is 'copy' there, 'reverse' asked"),
    (tiny(model={"hidden_dim": 7}), "model.hidden_dim is"),
    (resolve({"task": {"name": "copy", "length": 3}, "model": {"name": "cnn"}}, {"train": {"steps": 4}}),
     "model.name is 'mlp' there, 'cnn' asked"),
    (tiny(lr=0.5), "other settings (train.lr is 0.001 there, 0.5 asked)"),
    (tiny(seed=1), "other settings (train.seed is 0 there, 1 asked)"),
])
def test_a_folder_holding_another_run_is_refused_and_left_as_it_is(tmp_path, other, message):
    ensure(tiny(), tmp_path / "r")
    train(tiny(steps=6), tmp_path / "killed", progress=False, stop_after=3)
    for folder in (tmp_path / "r", tmp_path / "killed"):
        before = snapshot(folder)
        with pytest.raises(RunError, match=re.escape(message)) as err:
            ensure(other, folder)
        assert "\n" not in str(err.value) and snapshot(folder) == before


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(RunError, match="holds files that are not an attnlab run"):
        ensure(tiny(), tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="exists and is not a folder"):
        ensure(tiny(), tmp_path / "file")
    shutil.copytree(tmp_path / "notes", tmp_path / "bad")
    (tmp_path / "bad" / checkpoint.CONFIG).write_text(json.dumps({"kind": checkpoint.RUN_KIND, "task": {"name": "nope"}, "model": {"name": "mlp"}}))
    with pytest.raises(RunError, match=re.escape("config.yaml: unknown task")):
        ensure(tiny(), tmp_path / "bad")
