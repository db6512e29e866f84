"""Training: one loop for every family and task, run folders, comparisons, and torchrun.

from attnlab.train import ensure, load_run, resolve, train
config = resolve({"task": {"name": "copy"}, "model": {"name": "lstm"}}, {"train": {"steps": 500}})
summary = train(config, "runs/copy-lstm")   # a new run (a folder that holds one is an error)
summary = ensure(config, "runs/copy-lstm")  # reused: the same summary (a killed run would go on)
run = load_run("runs/copy-lstm")            # task, model (weights loaded), metrics
"""

from attnlab.errors import RunError
from attnlab.train.ensure import ensure
from attnlab.train.loop import evaluate, lr_at, train
from attnlab.train.run import Run, RunConfig, TrainConfig, build_task_and_model, load_run, resolve, retarget

__all__ = [
    "Run",
    "RunConfig",
    "RunError",
    "TrainConfig",
    "build_task_and_model",
    "ensure",
    "evaluate",
    "load_run",
    "lr_at",
    "resolve",
    "retarget",
    "train",
]
