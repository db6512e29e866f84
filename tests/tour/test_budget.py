"""attnlab.tour.budget: the typed budget gives each run the train settings written down here."""

import dataclasses
from typing import Any

import pytest

from attnlab.tour.budget import FULL, QUICK, Budget, Train
from attnlab.train import TrainConfig, resolve

SMOKE = {"steps": "4", "eval_every": "2", "eval_size": "16"}
LONG = {"eval_size": "256", "target": "0.99", "lr": "3e-3"}
MACHINE = {
    "eval_size": "128",
    "batch_size": "32",
    "lr": "3e-3",
    "warmup_steps": "50",
    "clip_norm": "10",
    "weight_decay": "0",
}
GLIMPSE = {"eval_size": "1000", "batch_size": "64", "lr": "1e-3", "warmup_steps": "100", "clip_norm": "5"}
BABI = {"lr": "0.01", "warmup_steps": "0", "clip_norm": "40"}

# The train.* overrides of each section's runs, as strings (the full tour's cut to fit ten minutes;
# the NTM's copy on the compiled path, which learns it within the budget).
EXPECTED = {
    "quick": {
        "families.long_range": {**SMOKE, "batch_size": "16", "lr": "3e-3"},
        "families.reverse": {**SMOKE, "batch_size": "16", "lr": "3e-3"},
        "copy.train": {**SMOKE, "batch_size": "16", "lr": "3e-3"},
        "translation.train": {**SMOKE, "batch_size": "16"},
        "babi.train": {**SMOKE, "eval_size": "1000", "batch_size": "16", **BABI},
        "machines.copy": {**SMOKE, "batch_size": "8"},
        "machines.recall": {**SMOKE, "batch_size": "8"},
        "glimpse.ram": {**SMOKE, "batch_size": "8"},
        "glimpse.cnn": {**SMOKE, "batch_size": "8"},
        "captioning.train": {**SMOKE, "batch_size": "8"},
    },
    "full": {
        "families.long_range": {"steps": "300", "eval_every": "100", **LONG},
        "families.reverse": {"steps": "300", "eval_every": "100", **LONG},
        "copy.train": {"steps": "800", "eval_every": "100", **LONG},
        "translation.train": {
            "steps": "500",
            "eval_every": "250",
            "eval_size": "200",
            "batch_size": "64",
            "lr": "3e-3",
            "warmup_steps": "100",
        },
        "babi.train": {"steps": "6000", "eval_every": "500", "eval_size": "2000", "batch_size": "32", **BABI},
        "machines.copy": {"steps": "3000", "eval_every": "250", "target": "0.05", "path": "compiled", **MACHINE},
        "machines.recall": {"steps": "400", "eval_every": "200", **MACHINE},
        "glimpse.ram": {"steps": "1500", "eval_every": "750", **GLIMPSE, "guide_steps": "300", "guide_every": "4"},
        "glimpse.cnn": {"steps": "600", "eval_every": "300", **GLIMPSE},
        "captioning.train": {
            "steps": "1000",
            "eval_every": "500",
            "eval_size": "250",
            "batch_size": "64",
            "lr": "3e-3",
            "warmup_steps": "50",
            "clip_norm": "5",
        },
    },
}


def train_config(train: dict[str, Any]) -> TrainConfig:
    return resolve({"task": {"name": "copy"}, "model": {"name": "lstm"}}, {"train": train}).train


@pytest.mark.parametrize("budget", [QUICK, FULL], ids=["quick", "full"])
def test_every_run_trains_with_the_settings_it_always_had(budget: Budget) -> None:
    for where, strings in EXPECTED[budget.name].items():
        part, name = where.split(".")
        train = getattr(getattr(budget, part), name)
        numbers = {k: v if k == "path" else pytest.approx(float(v)) for k, v in strings.items()}
        assert train.overrides(seed=3) == {**numbers, "seed": 3}
        assert train_config(train.overrides(seed=3)) == train_config({**strings, "seed": "3"}), where


def test_task_sizes_and_other_parts() -> None:
    assert (QUICK.translation.pairs, QUICK.translation.scored) == (200, 50)
    assert (FULL.translation.pairs, FULL.translation.scored) == (20000, None)
    assert (QUICK.babi.stories, QUICK.babi.story_len) == (25, 10)
    assert (FULL.babi.stories, FULL.babi.story_len) == (None, None)  # the task's own defaults
    assert (QUICK.machines.tested, FULL.machines.tested) == (16, 256)
    assert (QUICK.pretrained.own_steps, FULL.pretrained.own_steps) == (4, 500)
    assert (QUICK.captioning.scenes, QUICK.captioning.scored, FULL.captioning.scenes, FULL.captioning.scored) == (
        40,
        8,
        4000,
        250,
    )
    assert not QUICK.progress and FULL.progress
    assert (QUICK.lanes, FULL.lanes) == (1, 2)  # the full tour trains two sections at once


def test_unset_fields_leave_the_defaults_and_budgets_are_frozen() -> None:
    assert Train(steps=5, eval_every=5, eval_size=8).overrides(seed=0) == {
        "steps": 5,
        "eval_every": 5,
        "eval_size": 8,
        "seed": 0,
    }
    assert train_config(QUICK.machines.copy.overrides(0)).lr == TrainConfig().lr
    train: Any = QUICK.copy.train
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.steps = 5
    assert Budget.of(quick=True) is QUICK and Budget.of(quick=False) is FULL
