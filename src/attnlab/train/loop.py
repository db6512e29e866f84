"""The one training loop every model family and task goes through.

AdamW with a linear warm-up and a cosine decay, gradient-norm clipping, evaluation and a
checkpoint every `eval_every` steps, early stop at a target metric, a progress bar, and a
record per evaluation in metrics.jsonl. The loop only needs `model(inputs, targets) -> logits`
and the task's `loss` and `metrics`, so the families stay interchangeable. A family with a
schedule of its own (memn2n's linear start) defines `on_eval(step, val_metrics) -> dict | None`;
the loop calls it after every evaluation, before the checkpoint, and adds what it returns to the
metrics record. Whatever the schedule changes must live in the model's state (buffers) to resume.

Deterministic on CPU: the same config gives the same weights, and a run resumed from its last
checkpoint ends with the same weights as one never interrupted (the data generator, torch's
RNG, the optimizer and the step are all in the checkpoint).

Nothing lost: the process holds the run folder's lock (checkpoint.lock) while it writes; a new run
that fails before its first checkpoint leaves no folder behind (nor any file in a folder it did not
create); a run killed before its first checkpoint starts again from step 0 when resumed. A step
whose loss or gradient norm is not finite makes no update: with train.nonfinite "stop" the run
ends there with a DivergenceError naming the step (one line), with "skip" the step is counted
(`skipped_steps` in the records) and training goes on, unless every step since the last
evaluation was skipped. Non-finite weights are never written: the last good checkpoint stays, and
best.safetensors keeps the weights of the best validation metric.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from attnlab.core.fast import seconds_compiling, set_path
from attnlab.errors import ConfigError, DivergenceError, RunError
from attnlab.models import TaskModel
from attnlab.models.registry import split_output
from attnlab.progress import progress_bar
from attnlab.tasks.base import Batch, Task
from attnlab.train import checkpoint, distributed
from attnlab.train.clipping import clip_gradients_, clip_groups
from attnlab.train.run import RunConfig, TrainConfig, build_task_and_model, resolve
from attnlab.train.trainer_state import GlobalRNG, restore_trainer, trainer_state


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then the cosine decay, or
    with schedule "step" the lr times decay_factor ** ((step - decay_start) // decay_every), the lr
    itself before decay_start."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "step":
        return cfg.lr * cfg.decay_factor ** (max(0, step - cfg.decay_start) // cfg.decay_every)
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """cfg.optimizer (AdamW, or plain SGD) with weight decay on matrices only (not on biases, norms or
    scalars)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return optimizer_like(cfg, groups)


def optimizer_like(cfg: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimizer cfg names over these parameter groups."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


@torch.no_grad()
def evaluate(model: TaskModel, task: Task, data: Batch, chunk: int = 256) -> dict[str, float]:
    """The task's loss and metrics on data, in eval mode (decoding families decode freely)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = torch.cat([model(data.rows(slice(i, i + chunk)).inputs.to(device)) for i in range(0, len(data), chunk)])
    data = data.to(device)
    result = {"loss": task.loss(logits, data).item(), **task.metrics(logits, data)}
    model.train(was_training)
    return result


class NonFiniteStep(Exception):
    """A training step whose loss or gradient norm was not finite; no update was made."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what  # what went non-finite: "the loss (nan)", "the gradients (norm inf)"


def optimizer_step(
    net: nn.Module,
    model: nn.Module,
    task: Task,
    batch: Batch,
    opt: torch.optim.Optimizer,
    clip_norm: float,
    clip_each: bool = False,
    guided: bool = False,
    precision: str = "float32",
) -> Tensor:
    """One training step on batch: forward (net: the model, or its DDP wrapper), the task's loss plus
    the family's aux loss, backward, gradient-norm clipping of model's parameters (all together, or
    with clip_each each alone: attnlab.train.clipping), the optimizer's step; the loss. guided: the
    loss is the family's guided start's instead (`guide_loss` on the batch's boxes; one process). precision
    "bfloat16": the forward and the loss under autocast to bfloat16 on the batch's device (backward outside).

    Raises:
        NonFiniteStep: the loss or the gradients' norm is nan or infinite (the weights are untouched).
    """
    model.train()
    with torch.autocast(batch.inputs.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        if guided:
            assert batch.boxes is not None  # check_guided saw the task give them
            loss = cast(TaskModel, model).guide_loss(batch.inputs, batch.targets, batch.boxes)
        else:
            logits, aux = split_output(net(batch.inputs, batch.targets))
            loss = task.loss(logits, batch) if aux is None else task.loss(logits, batch) + aux
    return apply_gradients(loss, model, opt, clip_norm, clip_each)


def apply_gradients(
    loss: Tensor, model: nn.Module, opt: torch.optim.Optimizer, clip_norm: float, clip_each: bool = False
) -> Tensor:
    """The rest of a training step once its loss is known: backward, the gradients' clipping (as
    `optimizer_step`'s), the optimizer's step; the loss.

    Raises:
        NonFiniteStep: the loss or the gradients' norm is nan or infinite (the weights are untouched).
    """
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])  # () the same on every process
    if not (torch.isfinite(loss) and torch.isfinite(norm)):
        opt.zero_grad(set_to_none=True)
        what = f"the loss ({loss.item()})" if not torch.isfinite(loss) else f"the gradients (norm {norm.item()})"
        raise NonFiniteStep(what)
    clip_gradients_(params, clip_norm, clip_each, norm=norm, groups=clip_groups(model) if clip_each else ())
    opt.step()
    return loss


def guided_at(step: int, cfg: TrainConfig) -> bool:
    """Whether step (counted from 1) trains by the family's guided start: the first cfg.guide_steps, and after
    them every cfg.guide_every-th step (0: none), so that the policy keeps some imitation of where to look."""
    return step <= cfg.guide_steps or (cfg.guide_every > 0 and step % cfg.guide_every == 0)


def check_guided(config: RunConfig, task: Task, model: TaskModel, procs: distributed.Processes) -> None:
    """Raise ConfigError, naming train.guide_steps (or train.guide_every where only it is set), where the run
    cannot have guided steps."""
    field = "train.guide_steps" if config.train.guide_steps else "train.guide_every"
    if not model.guided:
        raise ConfigError(f"{field}: model {config.model} has no guided start (ram and dram have)")
    if procs.distributed:
        raise ConfigError(f"{field}: a guided start trains on one process; run it without torchrun")
    if task.sample(1, torch.Generator().manual_seed(0)).boxes is None:
        raise ConfigError(f"{field}: task {config.task} gives no boxes of its objects to guide the glimpses to")


def reached(value: float, target: float | None, maximize: bool) -> bool:
    if target is None:
        return False
    return value >= target if maximize else value <= target


def _better(value: float, best: float | None, maximize: bool) -> bool:
    return best is None or (value > best if maximize else value < best)


def train(
    config: RunConfig,
    folder: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train config's model on its task into the run folder; returns the run's summary.

    resume: continue the run in folder from its last checkpoint; config must equal the run's own
    except in train.* (raising train.steps extends a run); a run that never reached its first
    checkpoint starts again from step 0. stop_after: end this call after that many steps (as if
    killed), leaving the last checkpoint for a resume.

    Raises:
        RunError: the folder cannot be written, holds another run, or another process writes it.
        DivergenceError: training went non-finite (see the module docstring).
    """
    folder = Path(folder)
    cfg = config.train
    procs = distributed.start(cfg.device)
    try:
        restart = False  # a run killed before its first checkpoint, started again
        if resume:
            saved = resolve(checkpoint.load_config(folder))
            if saved.to_dict() | {"train": {}} != config.to_dict() | {"train": {}}:
                raise RunError(f"{folder}: --resume takes the run's own config (only train.* may change)")
            restart = not checkpoint.has_checkpoint(folder) and not _finished_record(folder)
        elif procs.is_main:
            if folder.is_dir():
                with checkpoint.lock(folder):  # a run being written: name its writer, not what it holds so far
                    pass
            checkpoint.check_new_run_dir(folder)
        seed_everything(cfg.seed)
        fresh = not resume or restart
        task, model = build_task_and_model(config, None if fresh else folder)
        model.to(procs.device)
        paths = set_path(model, cfg.path)
        if cfg.guide_steps or cfg.guide_every:
            check_guided(config, task, model, procs)
        if progress and procs.is_main:
            for line in paths:
                print(f"path: {line}", flush=True)
        slow = distributed.slow_bfloat16(procs.device) if cfg.precision == "bfloat16" else None
        if slow and procs.is_main:
            print(slow, file=sys.stderr, flush=True)
        opt = make_optimizer(model, cfg)
        data_gen = torch.Generator().manual_seed(cfg.seed + 1)
        state: dict[str, Any] = {"step": 0, "best": None, "train_seconds": 0.0, "stopped_early": False}
        if cfg.nonfinite == "skip":
            state["skipped_steps"] = 0
        with _writing(folder, procs, new=not resume, restart=restart):
            if not fresh:
                state.update(restore_trainer(folder, model, opt, data_gen))
                if state["step"] > cfg.steps:
                    raise RunError(
                        f"{folder}: has trained {state['step']} steps, more than train.steps={cfg.steps}; "
                        "give at least as many steps"
                    )
                # a run that stopped at its target goes on when the resumed config's target is not reached
                state["stopped_early"] = state["stopped_early"] and reached(state["best"], cfg.target, task.maximize)
            elif procs.is_main:
                checkpoint.save_config(folder, config.to_dict())
                task.save_assets(folder)
            distributed.barrier(procs)
            resumed_from = None if fresh else state["step"]  # the folder changes at the first write
            return _loop(config, folder, task, model, opt, data_gen, state, procs, progress, stop_after, resumed_from)
    finally:
        distributed.stop(procs)


def _finished_record(folder: Path) -> bool:
    """Whether metrics.jsonl holds a test summary (a finished run, perhaps kept without trainer state)."""
    return any(r.get("split") == "test" for r in checkpoint.read_metrics(folder))


@contextlib.contextmanager
def _writing(folder: Path, procs: distributed.Processes, *, new: bool, restart: bool) -> Iterator[None]:
    """Hold the run folder's lock while the block writes it (the main process; the others just run it).

    new: a new run; the folder is created if missing and checked empty again under the lock, and
    if the block fails before the first checkpoint, what it wrote is removed (the folder too, if
    created here). restart: a run that never reached its first checkpoint; its files are removed
    first, so it starts as a new run would. Temporary files a killed writer left are removed.
    """
    if not procs.is_main:
        yield
        return
    created = False
    if new:
        try:
            folder.mkdir(parents=True)
            created = True
        except FileExistsError:
            pass
        except OSError as err:
            raise RunError(f"{folder}: cannot create the run folder ({err.strerror or err})") from None
    with checkpoint.lock(folder):
        checkpoint.clean_temporaries(folder)
        if new:
            checkpoint.check_new_run_dir(folder)  # again under the lock: no other start got here first
        if restart:
            _remove_files(folder)
        try:
            yield
        except BaseException:
            if new and not checkpoint.has_checkpoint(folder):
                _remove_files(folder)
                if created and not any(folder.iterdir()):
                    folder.rmdir()
            raise


def _remove_files(folder: Path) -> None:
    """Remove the files (not the subfolders) of a run folder that holds no checkpoint."""
    for path in folder.iterdir():
        if path.is_file():
            path.unlink()


def _finite(model: nn.Module) -> bool:
    """Whether every parameter of model is finite (buffers may hold inf: memn2n's best loss starts there)."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _loop(
    config: RunConfig,
    folder: Path,
    task: Task,
    model: TaskModel,
    opt: torch.optim.Optimizer,
    data_gen: torch.Generator,
    state: dict[str, Any],
    procs: distributed.Processes,
    progress: bool,
    stop_after: int | None,
    resumed_from: int | None,
) -> dict[str, Any]:
    """The steps, evaluations and checkpoints of `train`, then the test summary.

    resumed_from: the checkpoint's step of a resumed run. Its folder is changed only at its first
    write (the records past that step dropped, its config saved), so that a resume that fails
    before (a bad setting, a divergence) leaves the run as it was.
    """
    cfg: TrainConfig = config.train
    pending = [resumed_from] if resumed_from is not None else []

    def commit_resume() -> None:
        while pending:
            checkpoint.truncate_metrics(folder, pending.pop())
            checkpoint.save_config(folder, config.to_dict())

    step0 = state["step"]
    net = distributed.wrap(model, procs)
    val = task.eval_set(cfg.eval_size, "val")
    bar = progress_bar(
        total=cfg.steps,
        initial=step0,
        desc=f"{config.model} on {config.task}",
        unit="step",
        enabled=progress and procs.is_main,
    )
    losses: list[float] = []
    compiling = seconds_compiling()
    started = time.perf_counter() - state["train_seconds"]
    saved = step0 if step0 > 0 else None  # the step of the last good checkpoint

    def diverged(what: str) -> DivergenceError:
        bar.close()
        kept = f"the checkpoint of step {saved} is kept" if saved is not None else "no checkpoint was written"
        return DivergenceError(
            f"{folder}: step {state['step']}: {what}; stopped ({kept}); lower train.lr"
            + (", or skip such steps with train.nonfinite=skip" if cfg.nonfinite == "stop" else "")
        )

    while state["step"] < cfg.steps and not state["stopped_early"]:
        if stop_after is not None and state["step"] - step0 >= stop_after:
            bar.close()
            return {"step": state["step"], "interrupted": True}
        for group in opt.param_groups:
            group["lr"] = lr_at(state["step"], cfg)
        batch = distributed.shard(task.sample(cfg.batch_size, data_gen), procs).to(procs.device)
        state["step"] += 1
        try:
            guided = guided_at(state["step"], cfg)  # counted from 1 here
            loss = optimizer_step(net, model, task, batch, opt, cfg.clip_norm, cfg.clip_each, guided, cfg.precision)
            losses.append(loss.item())
        except NonFiniteStep as fault:
            if cfg.nonfinite == "stop":
                raise diverged(f"{fault.what} went non-finite") from None
            state["skipped_steps"] += 1
        bar.update(1)
        if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
            if not losses:
                raise diverged(f"every step since step {saved or 0} went non-finite and was skipped")
            if not _finite(model):
                raise diverged("the weights went non-finite")
            metrics = evaluate(model, task, val)
            on_eval = getattr(model, "on_eval", None)
            scheduled = (on_eval(state["step"], metrics) if on_eval is not None else None) or {}
            value = metrics[task.metric]
            improved = math.isfinite(value) and _better(value, state["best"], task.maximize)
            if improved:
                state["best"] = value
            state["stopped_early"] = reached(value, cfg.target, task.maximize)
            state["train_seconds"] = time.perf_counter() - started
            record = {
                "step": state["step"],
                "split": "val",
                "lr": opt.param_groups[0]["lr"],
                "train_loss": sum(losses) / len(losses),
                **metrics,
                **scheduled,
                **({"skipped_steps": state["skipped_steps"]} if "skipped_steps" in state else {}),
                "seconds": round(state["train_seconds"], 3),
            }
            losses.clear()
            bar.set_postfix(loss=f"{record['train_loss']:.3f}", **{task.metric: f"{value:.3f}"})
            if procs.is_main:
                trainer = trainer_state(model, opt.state_dict(), data_gen, state, GlobalRNG.capture())
                commit_resume()
                checkpoint.save_checkpoint(folder, model, record, trainer, improved=improved, keep=cfg.keep_checkpoints)
            saved = state["step"]
            distributed.barrier(procs)
    bar.close()
    test = evaluate(model, task, task.eval_set(cfg.eval_size, "test"))
    summary = {
        "step": state["step"],
        "split": "test",
        **test,
        "best_val": state["best"],
        "stopped_early": state["stopped_early"],
        "seconds": round(state["train_seconds"], 3),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if seconds_compiling() > compiling:  # paid once per process, within the training seconds
        summary["compile_seconds"] = round(seconds_compiling() - compiling, 3)
    if procs.is_main:
        commit_resume()
        checkpoint.append_metrics(folder, summary)
    return summary
