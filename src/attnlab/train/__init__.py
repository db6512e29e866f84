"""Training: one loop for every family and task, run folders, comparisons, and torchrun.

    from attnlab.train import resolve, train, load_run
    config = resolve({"task": {"name": "copy"}, "model": {"name": "lstm"}}, {"train": {"steps": 500}})
    summary = train(config, "runs/copy-lstm")
    run = load_run("runs/copy-lstm")          # task, model (weights loaded), metrics
"""

from attnlab.errors import RunError
from attnlab.train.loop import evaluate, lr_at, train
from attnlab.train.run import Run, RunConfig, TrainConfig, build_task_and_model, load_run, resolve, retarget

__all__ = [
    "Run", "RunConfig", "RunError", "TrainConfig", "build_task_and_model", "evaluate", "load_run", "lr_at",
    "resolve", "retarget", "train",
]
