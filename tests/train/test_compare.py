import csv
import json
import re
import statistics

import pytest

from attnlab.errors import ConfigError
from attnlab.train import compare

TRAIN = {"train": {"steps": "4", "eval_every": "2", "eval_size": "8", "batch_size": "8", "device": "cpu"}}


def test_sweep_parse():
    sweep = compare.Sweep.parse("task.distance=8,32")
    assert (sweep.section, sweep.key, sweep.values, sweep.name) == ("task", "distance", ("8", "32"), "task.distance")
    with pytest.raises(ConfigError, match=re.escape("--sweep expects section.key=v1,v2")):
        compare.Sweep.parse("distance=8")


def test_plan_gives_each_family_only_its_own_model_keys():
    jobs = compare.plan("long_range", ["lstm", "cnn"], 2, {"model": {"hidden_dim": "32", "kernel_size": "3"}},
                        compare.Sweep.parse("task.distance=4,8"))
    assert len(jobs) == 8 and len({j["name"] for j in jobs}) == 8
    lstm = next(j for j in jobs if j["model"] == "lstm")["config"]
    cnn = next(j for j in jobs if j["model"] == "cnn")["config"]
    assert lstm.model_config.hidden_dim == 32 and cnn.model_config.kernel_size == 3
    assert {j["config"].task_config.distance for j in jobs} == {4, 8}
    assert {j["config"].train.seed for j in jobs} == {0, 1}
    with pytest.raises(ConfigError, match=re.escape("unknown key model.hiden_dim for lstm, cnn")):
        compare.plan("long_range", ["lstm", "cnn"], 1, {"model": {"hiden_dim": "3"}}, None)
    with pytest.raises(ConfigError, match="--seeds must be >= 1"):
        compare.plan("long_range", ["lstm"], 0, {}, None)


def test_summarise_computes_mean_spread_and_range():
    rows = [{"model": "a", "setting": "1", "seed": s, "test": {"accuracy": v}, "seconds": 1.0, "parameters": 5}
            for s, v in enumerate([0.5, 0.7, 0.9])]
    (row,) = compare.summarise(rows, "accuracy")
    assert row["mean"] == pytest.approx(0.7) and row["std"] == pytest.approx(statistics.stdev([0.5, 0.7, 0.9]))
    assert (row["min"], row["max"], row["seeds"]) == (0.5, 0.9, 3)
    table = compare.markdown_table([row], "accuracy", compare.Sweep.parse("task.distance=1"))
    assert "| a | 0.700 ± 0.200 (0.500–0.900) |" in table and "task.distance=1" in table


def test_run_all_writes_tables_and_reuses_finished_runs(tmp_path):
    jobs = compare.plan("copy", ["mlp", "cnn"], 2, {"task": {"length": "3"}, **TRAIN}, None)
    rows = compare.run_all(jobs, tmp_path, progress=False)
    assert [r["name"] for r in rows] == ["mlp-seed0", "mlp-seed1", "cnn-seed0", "cnn-seed1"]
    summary = compare.summarise(rows, "accuracy")
    files = compare.write_results(tmp_path, rows, summary, task="copy", metric="accuracy", sweep=None, command="x")
    with open(files["results.csv"]) as f:
        table = list(csv.DictReader(f))
    assert [r["model"] for r in table] == ["mlp", "mlp", "cnn", "cnn"]
    assert float(table[0]["accuracy"]) == rows[0]["test"]["accuracy"]
    assert "plot.png" not in files  # drawing is viz's: attnlab.viz.curves.draw_results
    assert json.loads(files["results.json"].read_text())["summary"][0]["model"] == "mlp"
    weights = tmp_path / "runs" / "mlp-seed0" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = compare.run_all(jobs, tmp_path, progress=False)
    assert again == rows and weights.stat().st_mtime_ns == stamp


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path):
    (job,) = compare.plan("copy", ["mlp"], 1, {"task": {"length": "3"}, **TRAIN}, None)
    from attnlab.train import checkpoint

    folder = tmp_path / "runs" / job["name"]
    folder.mkdir(parents=True)
    checkpoint.save_config(folder, job["config"].to_dict())  # what a run writes before its first step
    (row,) = compare.run_all([job], tmp_path, progress=False)
    assert row["step"] == 4 and (folder / "model.safetensors").is_file()


def test_a_finished_run_with_other_settings_is_continued_not_reused(tmp_path):
    (job,) = compare.plan("copy", ["mlp"], 1, {"task": {"length": "3"}, **TRAIN}, None)
    compare.run_all([job], tmp_path, progress=False)
    longer = {"task": {"length": "3"}, "train": {**TRAIN["train"], "steps": "6"}}
    (job6,) = compare.plan("copy", ["mlp"], 1, longer, None)
    (row,) = compare.run_all([job6], tmp_path, progress=False)
    assert row["step"] == 6
    other_task = {"task": {"length": "4"}, **TRAIN}
    (clash,) = compare.plan("copy", ["mlp"], 1, other_task, None)
    from attnlab.errors import RunError

    with pytest.raises(RunError, match=re.escape("holds another run (task.length is 3 there, 4 asked)")):
        compare.run_all([clash], tmp_path, progress=False)


def test_best_of_seeds_picks_the_seed_best_on_validation():
    rows = [{"model": "a", "setting": None, "seed": s, "test": {"loss": t}, "best_val": v, "seconds": 1.0,
             "parameters": 5} for s, (t, v) in enumerate([(0.3, 0.5), (0.4, 0.2), (0.1, 0.9)])]
    (low,) = compare.summarise(rows, "loss", maximize=False)
    assert (low["best_seed"], low["best_of_seeds"]) == (1, 0.4)  # the lowest validation loss, not the lowest test loss
    (high,) = compare.summarise(rows, "loss", maximize=True)
    assert (high["best_seed"], high["best_of_seeds"]) == (2, 0.1)
    table = compare.markdown_table([low], "loss", None, best_of=True)
    assert "| a | 0.400 (seed 1; 0.267 ± 0.153) |" in table and "best validation loss, of 3 seeds" in table
