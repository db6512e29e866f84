"""What a run is: a task, a model family and the training settings, and how to rebuild one.

A run's config is plain data in three sections,

    task:  {name: long_range, distance: 64, ...}   the task's registry name and Config fields
    model: {name: lstm, hidden_dim: 128, ...}      the family's registry name and Config fields
    train: {steps: 2000, lr: 0.001, ...}           TrainConfig fields

built from defaults (the dataclass's, then the registry entry's), then a YAML file, then dotted
overrides (`--model.num_layers=2`), each checked against the dataclass it fills. A model section
holds fields of the family's Config, the mechanism's own (NTMConfig, TransformerConfig, ...).
`load_run(folder)` rebuilds the task and the model from a run's config.yaml and loads its weights
(the last step's, or with weights="best" those of the best validation metric).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.config import build, closest, to_dict
from attnlab.core.fast import check_path
from attnlab.errors import ConfigError, RunError
from attnlab.models import MODELS, TaskModel
from attnlab.tasks import TASKS, Task
from attnlab.train import checkpoint

NONFINITE = ("stop", "skip")
OPTIMIZERS = ("adamw", "sgd")
PRECISIONS = ("float32", "bfloat16")
SCHEDULES = ("cosine", "step")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")  # what train.device may name (resolve_device checks it is there)


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained; defaults suit the generated tasks on a CPU."""

    steps: int = 2000  # optimizer steps
    batch_size: int = 64  # global batch: split over processes under torchrun
    lr: float = 1e-3  # peak learning rate
    optimizer: str = "adamw"  # "adamw", or "sgd" (plain, no momentum: as MemN2N and the NTM papers trained)
    weight_decay: float = 0.01  # decoupled weight decay (AdamW; SGD's L2 term), on matrices only
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    schedule: str = "cosine"  # after warm-up: "cosine" (to lr * min_lr_ratio at the last step) or "step"
    min_lr_ratio: float = 0.1  # the cosine decays from lr to lr * min_lr_ratio at the last step
    decay_every: int = 0  # "step": the lr is multiplied by decay_factor every this many steps (> 0)
    decay_factor: float = 0.5  # "step": the factor (MemN2N halved its lr every 15 epochs of joint bAbI)
    decay_start: int = 0  # "step": the lr stays at lr until this step, then decays (after MemN2N's linear start)
    clip_norm: float = 1.0  # gradient norm clipping; 0 disables it
    clip_each: bool = False  # clip each weight's gradient alone (a matrix's by its largest singular value)
    eval_every: int = 200  # evaluate on the validation set (and checkpoint) every this many steps
    eval_size: int = 512  # validation and test examples
    target: float | None = None  # stop early once the task's metric reaches this on validation
    seed: int = 0  # seeds Python, numpy and torch: the model's init and the training data
    device: str = "auto"  # cpu, cuda, cuda:N, or auto (cuda when present)
    path: str = "fast"  # eager (the readable steps), fast (fused steps) or compiled (torch.compile)
    nonfinite: str = (
        "stop"  # a step with a non-finite loss or gradient: "stop" the run (one line), or "skip" it and count it
    )
    keep_checkpoints: int = 0  # also keep the last this many evaluations' weights (checkpoints/), for averaging
    guide_steps: int = 0  # the first this many steps train by the family's guided start (glimpse models: the
    # glimpses at the batch's boxes, attnlab.glimpse.guide), the rest as usual
    guide_every: int = 0  # after those, every this-many-th step is a guided one too (0: none; loop.guided_at)
    precision: str = "float32"  # "bfloat16": each training step's forward and loss under autocast to bfloat16
    # (the weights, optimizer and evaluations stay float32)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "clip_norm", "warmup_steps"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):  # nan fails both
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        check_path(self.path)
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.target is not None and not math.isfinite(self.target):
            raise ValueError(f"target must be a finite number or none, got {self.target}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.schedule == "step" and self.decay_every < 1:
            raise ValueError(f"decay_every must be >= 1 with schedule step, got {self.decay_every}")
        for name in ("decay_every", "decay_start", "keep_checkpoints", "guide_steps", "guide_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.decay_factor <= 1:
            raise ValueError(f"decay_factor must be in (0, 1], got {self.decay_factor}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.nonfinite not in NONFINITE:
            raise ValueError(f"nonfinite must be one of {', '.join(NONFINITE)}, got {self.nonfinite!r}")
        if not DEVICE.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


@dataclass(frozen=True)
class RunConfig:
    """A task, a model family and training settings, each by name and checked config."""

    task: str
    model: str
    task_config: Any = None  # the task's Config instance
    model_config: Any = None  # the family's Config instance
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": {"name": self.task, **to_dict(self.task_config)},
            "model": {"name": self.model, **to_dict(self.model_config)},
            "train": to_dict(self.train),
        }

    def replace(self, section: str, **values: Any) -> RunConfig:
        """A copy with some fields of one section changed (checked like overrides)."""
        data = self.to_dict()
        data[section] = {**data[section], **values}
        return resolve(data)


SECTIONS = ("task", "model", "train")


def resolve(data: dict[str, Any], overrides: dict[str, dict[str, Any]] | None = None) -> RunConfig:
    """A RunConfig from plain data (as in config.yaml) with overrides applied on top."""
    overrides = overrides or {}
    for section in [*data, *overrides]:
        if section not in SECTIONS:
            raise ConfigError(f"unknown section {section!r}{closest(section, list(SECTIONS))}")
    for section in SECTIONS:
        if not isinstance(data.get(section) or {}, dict):
            raise ConfigError(f"{section}: expected a mapping of keys to values, got {data[section]!r}")
    merged = {s: {**(data.get(s) or {}), **overrides.get(s, {})} for s in SECTIONS}
    task_name = merged["task"].pop("name", None)
    model_name = merged["model"].pop("name", None)
    if not task_name:
        raise ConfigError("task.name is missing")
    if not model_name:
        raise ConfigError("model.name is missing")
    return RunConfig(
        task=task_name,
        model=model_name,
        task_config=TASKS.build_config(task_name, merged["task"], where="task"),
        model_config=MODELS.build_config(model_name, merged["model"], where="model"),
        train=build(TrainConfig, merged["train"], where="train"),
    )


def build_task_and_model(config: RunConfig, folder: str | Path | None = None) -> tuple[Task, TaskModel]:
    """The task (with the assets saved in a run folder, if given) and a freshly initialised model
    (without a folder, also prepared by the task: `Task.prepare_model`).

    A family that cannot do the task is a ConfigError.
    """
    task = TASKS.get(config.task)(config.task_config)
    if folder is not None:
        task.load_assets(folder)
    try:
        model = MODELS.get(config.model)(config.model_config, task.spec)
    except ValueError as err:
        raise ConfigError(f"model {config.model!r} on task {config.task!r}: {err}") from None
    if folder is None:  # a new run: the task may start the model from pretrained parts
        task.prepare_model(model)
    return task, model


@dataclass
class Run:
    """A run rebuilt from its folder."""

    folder: Path
    config: RunConfig
    task: Task
    model: TaskModel
    metrics: list[dict[str, Any]]


def saved_config(folder: str | Path) -> RunConfig:
    """The RunConfig in a run folder's config.yaml.

    Raises:
        RunError: the folder is not a run, or its config no longer resolves (naming config.yaml).
    """
    folder = Path(folder)
    data = checkpoint.load_config(folder)
    try:
        return resolve(data)
    except ConfigError as err:
        raise RunError(f"{folder / checkpoint.CONFIG}: {err}") from None


WEIGHT_FILES = {"last": checkpoint.WEIGHTS, "best": checkpoint.BEST}  # which weights load_run reads


def load_run(folder: str | Path, weights: str = "last") -> Run:
    """Rebuild the task and model of a run from its config, then load its weights (eval mode): the
    last step's (model.safetensors) or, with weights="best", those of its best validation metric
    (best.safetensors)."""
    if weights not in WEIGHT_FILES:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHT_FILES)}, got {weights!r}")
    folder = Path(folder)
    config = saved_config(folder)
    task, model = build_task_and_model(config, folder)
    checkpoint.load_weights(folder, model, WEIGHT_FILES[weights])
    model.eval()
    return Run(folder, config, task, model, checkpoint.read_metrics(folder))


def retarget(run: Run, *, model: dict[str, Any] | None = None, **task_values: Any) -> Run:
    """The run's trained weights on a changed task: longer sequences, more items, a bigger image.

    The task is rebuilt with `task_values` over the run's task config (and the model with `model`
    over its config: sizes that no weight depends on, such as a memory's number of slots), the
    model is rebuilt for the new task's spec and given the run's weights. This works for families
    whose weights do not depend on the sequence length (recurrent nets, memory machines,
    parameter-free positions).

    Raises:
        RunError: the weights do not fit the model built for the new spec (say, learned positions).
    """
    config = run.config.replace("task", **task_values)
    if model:
        config = config.replace("model", **model)
    task, rebuilt = build_task_and_model(config, run.folder)
    try:
        rebuilt.load_state_dict(run.model.state_dict())
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise RunError(f"{run.folder}: the weights do not fit {config.task} with {task_values}: {first}") from None
    rebuilt.eval()
    return Run(run.folder, config, task, rebuilt, run.metrics)
