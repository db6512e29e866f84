"""Make a run folder hold the run a config asks for: reuse it, continue it, or train it.

    summary = ensure(config, "runs/copy-lstm")   # the run's test summary; trains only what is missing

The one way a comparison, the tour or a benchmark gets a trained run. A run is never overwritten
by another one, and never reused or continued where the result would not be the run asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.errors import RunError
from attnlab.tasks import TASKS
from attnlab.train import checkpoint
from attnlab.train.loop import reached, train
from attnlab.train.run import RunConfig, saved_config

# The train.* settings a run may be continued under: how long it trains, when it stops, where, and
# how many checkpoints it keeps. Any other (lr, batch_size, seed, ...) would make the continued run
# neither the old one nor the new.
CONTINUABLE = ("steps", "target", "device", "keep_checkpoints")


def ensure(config: RunConfig, folder: str | Path, *, progress: bool = False) -> dict[str, Any]:
    """The test summary of config's run in folder, training only what the folder lacks.

    What the folder holds decides (one process; under torchrun call `train`):

    - nothing (missing or empty): the run is trained from scratch;
    - a finished run of this config (equal apart from train.device; it ran all its train.steps
      or stopped early at its train.target): its test summary is returned, nothing is trained,
      and neither weights nor trainer state are needed;
    - a run of this task and model killed before its first checkpoint (no trainer state, no test
      summary): nothing was trained, so the run starts again from step 0 (`train` with resume=True);
    - a run of this task and model with a checkpoint whose train.* settings differ from config's
      at most in steps, target, device and keep_checkpoints: it continues from its last checkpoint (`train` with
      resume=True). So a killed run goes on where it stopped, one given more steps trains up to
      them, and one that stopped early at a target goes on under a target it has not reached.

    Args:
        config: the run asked for.
        folder: its run folder.
        progress: show the training progress bar.
    Returns:
        The run's test summary (the "test" record of its metrics.jsonl).
    Raises:
        RunError (one line, naming what differs; the folder is left as it is) when the folder
        holds files that are not a run; a run whose config cannot be read; a run of another task
        or model or with other task.* or model.* settings; a run with other train.* settings
        than steps, target, device and keep_checkpoints; a run that has trained more steps than config's; a run
        whose validation metric reached config's target before its last checkpoint (a run of
        this config would have stopped there); a finished run without trainer state (as kept
        in a results folder) asked for other train.* settings.
    """
    folder = Path(folder)
    action, summary = plan(config, folder)
    if action == "reuse":
        assert summary is not None
        return summary
    return train(config, folder, resume=action != "train", progress=progress)


def plan(config: RunConfig, folder: str | Path) -> tuple[str, dict[str, Any] | None]:
    """What `ensure` does with folder for config, and the finished run's test summary.

    Returns:
        ("train", None): nothing there, a new run; ("reuse", summary): a finished run of config;
        ("restart", None): a run killed before its first checkpoint; ("continue", None): a run
        continued from its checkpoint (trainer.safetensors).
    Raises:
        RunError: as `ensure` does, when the folder holds something config cannot reuse or continue.
    """
    folder = Path(folder)
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return "train", None
    there, asked = _saved_config(folder).to_dict(), config.to_dict()
    other = [*_differences(there, asked, "task").values(), *_differences(there, asked, "model").values()]
    if other:
        raise RunError(
            f"{folder}: holds another run ({other[0]}); only train.* settings may change, choose another folder"
        )
    changed = _differences(there, asked, "train")
    tests = [r for r in checkpoint.read_metrics(folder) if r.get("split") == "test"]
    if tests and set(changed) <= {"device"} and _finished(tests[-1], config):
        return "reuse", tests[-1]
    if not (folder / checkpoint.TRAINER).is_file():
        if tests:
            first = next(iter(changed.values()), "it did not finish")
            raise RunError(
                f"{folder}: a finished run without trainer state cannot be continued ({first}); choose another folder"
            )
        return "restart", None  # killed before its first checkpoint: starts again from step 0
    fixed = [text for key, text in changed.items() if key not in CONTINUABLE]
    if fixed:
        raise RunError(
            f"{folder}: holds a run trained with other settings ({fixed[0]}); only train.steps, train.target, "
            "train.device and train.keep_checkpoints may change to continue a run, choose another folder"
        )
    _check_not_past(folder, config)
    return "continue", None


def _saved_config(folder: Path) -> RunConfig:
    if not folder.is_dir():
        raise RunError(f"{folder}: exists and is not a folder")
    if not checkpoint.is_run(folder):
        raise RunError(f"{folder}: holds files that are not an attnlab run; choose another folder")
    return saved_config(folder)


def _differences(there: dict[str, Any], asked: dict[str, Any], section: str) -> dict[str, str]:
    """key -> 'section.key is X there, Y asked', for every key of section whose values differ."""
    old, new = there[section], asked[section]
    return {
        key: f"{section}.{key} is {old.get(key)!r} there, {new.get(key)!r} asked"
        for key in dict.fromkeys([*old, *new])
        if old.get(key) != new.get(key)
    }


def _finished(summary: dict[str, Any], config: RunConfig) -> bool:
    """Whether a test summary closes a run of config: it ran all its steps or stopped at its target."""
    return summary["step"] >= config.train.steps or bool(
        summary.get("stopped_early") and config.train.target is not None
    )


def _check_not_past(folder: Path, config: RunConfig) -> None:
    """RunError if the run's last checkpoint lies beyond where a run of config would have stopped."""
    _, state = checkpoint.load_trainer(folder, tensors=False)
    step, steps, target = state["step"], config.train.steps, config.train.target
    if step > steps:
        raise RunError(f"{folder}: has trained {step} steps, more than train.steps={steps}; choose another folder")
    if target is None:
        return
    task = TASKS.get(config.task)
    hit = next(
        (
            r
            for r in checkpoint.read_metrics(folder)
            if r.get("split") == "val"
            and r.get("step", 0) <= step
            and task.metric in r
            and reached(r[task.metric], target, task.maximize)
        ),
        None,
    )
    if hit is not None and not (hit["step"] == step and state["stopped_early"]):
        raise RunError(
            f"{folder}: its validation {task.metric} reached train.target={target} at step {hit['step']}, "
            f"where a run of this config stops, and was not stopped there (checkpoint at step {step}); "
            "choose another folder"
        )
