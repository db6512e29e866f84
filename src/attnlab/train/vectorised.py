"""K seeds of one configuration trained as one vectorised model: stacked parameters, one batched step.

    summaries = train_seeds([config.replace("train", seed=s) for s in range(10)], folders)

Small families (memory networks, RAM, the NTM and DNC, ~1e5-parameter sequence models) leave a
CPU mostly idle at their batch sizes; K copies stacked along a new leading dimension and run by
`torch.vmap` cost far less than K runs. Each seed is the run `attnlab.train.loop.train` would
make with that seed: the model is built after `seed_everything(seed)`, its batches come from its
own data generator, anything random in its forward is drawn from its own global RNG state (the
family's `draw_noise(inputs)`, passed in as `noise=`), its gradient is clipped by its own norm,
and AdamW acts on each element alone. Each seed gets an ordinary run folder (config, metrics,
weights, trainer state) that `ensure`, `load_run` and `train(resume=True)` treat like any other;
a seed that reaches its target is finished there and then while the others go on. The
wall-clock `seconds` of every seed is the whole group's.

A configuration is trained this way only when `why_not_vectorised` finds no reason against it:
the runs differ in train.seed alone, no folder holds anything yet (or, to continue them together,
every folder holds a checkpoint of the same step), one process, and the family draws nothing
random inside its forward (dropout) and has no per-seed schedule (memn2n's linear start ending on
each seed's validation loss; one ending at a set step, the same for all, stacks). Otherwise
`train_seeds` raises ConfigError naming the reason; `ensure_seeds` falls back to training the
seeds one after another. A stacked run that was killed goes on stacked: `ensure_seeds` continues
the seeds whose checkpoints share a step as one model again, each from its own trainer state
(weights, optimizer state, generators), so they end as uninterrupted runs would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state

from attnlab.core.fast import set_path
from attnlab.errors import ConfigError, DivergenceError, RunError
from attnlab.models import TaskModel
from attnlab.models.registry import split_output
from attnlab.progress import progress_bar
from attnlab.tasks.base import Batch, Task
from attnlab.train import checkpoint
from attnlab.train.clipping import clip_gradients_, clip_groups
from attnlab.train.distributed import resolve_device
from attnlab.train.ensure import ensure, plan
from attnlab.train.loop import evaluate, lr_at, make_optimizer, reached, seed_everything
from attnlab.train.run import RunConfig, build_task_and_model
from attnlab.train.stacking import load_stacked_states, seed_optimizer_state, stacked_optimizer
from attnlab.train.trainer_state import GlobalRNG, restore_trainer, trainer_state


def why_not_vectorised(
    configs: Sequence[RunConfig], folders: Sequence[str | Path], *, resume: bool = False
) -> str | None:
    """Why these runs cannot train as one vectorised model, or None when they can.

    resume: the runs are to be continued together from their checkpoints (which must exist, all
    of one step), rather than started in empty folders.
    """
    if len(configs) < 2:
        return "one seed: nothing to stack"
    if len(configs) != len(folders):
        return f"{len(configs)} configs for {len(folders)} folders"
    first = configs[0].to_dict()
    for config in configs[1:]:
        data = config.to_dict()
        if {**data, "train": {**data["train"], "seed": 0}} != {**first, "train": {**first["train"], "seed": 0}}:
            return "the runs differ in more than train.seed"
    if len({c.train.seed for c in configs}) != len(configs):
        return "two runs have the same seed"
    device = configs[0].train.device
    if device not in ("cpu", "auto") and not device.startswith("cuda"):
        return f"train.device {device!r}"
    if configs[0].train.precision != "float32":
        return f"train.precision={configs[0].train.precision}: the stacked step runs in float32"
    if configs[0].train.guide_steps or configs[0].train.guide_every:
        field = "guide_steps" if configs[0].train.guide_steps else "guide_every"
        return f"train.{field}: a guided start trains one model at a time"
    if configs[0].train.nonfinite != "stop":
        return f"train.nonfinite={configs[0].train.nonfinite} skips one seed's step, which a stacked step cannot"
    steps: set[int] = set()
    for folder in map(Path, folders):
        if resume:
            if not checkpoint.has_checkpoint(folder):
                return f"{folder} holds no checkpoint to continue from"
            steps.add(checkpoint.load_trainer(folder, tensors=False)[1]["step"])
        elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            return f"{folder} already holds files (a run there is continued or reused, not started)"
    if len(steps) > 1:
        return f"the checkpoints are at different steps ({', '.join(map(str, sorted(steps)))})"
    model_config = configs[0].model_config
    if getattr(model_config, "dropout", 0.0):
        return f"model.dropout={model_config.dropout} draws random numbers inside the forward"
    if getattr(model_config, "linear_start", False) and getattr(model_config, "linear_start_patience", 0) > 0:
        return (
            "memn2n's linear start ends when each seed's validation loss stalls, a different step for each"
            " (linear_start_patience=0 with linear_start_steps ends it at one step for all)"
        )
    return None


@dataclasses.dataclass
class _Seed:
    """One seed's own pieces: config, folder, a module to hold its slice, RNGs and bookkeeping."""

    config: RunConfig
    folder: Path
    model: TaskModel
    rng: GlobalRNG
    data_gen: torch.Generator
    state: dict[str, Any]
    losses: list[float]
    summary: dict[str, Any] | None = None
    seconds_before: float = 0.0  # training seconds of the run before this process continued it
    resumed_from: int | None = None  # the checkpoint's step until the first write (see `train`)
    opt_state: dict[str, Any] | None = None  # a continued seed's optimizer state_dict, as one run holds it


class SeedStack:
    """K models of one family stacked for torch.vmap: parameters (k, ...), one AdamW, one batched step.

    Args:
        models: the K models, each built as its own run builds it (same family and config).
        task: the task they train on (its loss).
        cfg: the runs' TrainConfig (optimizer groups, weight decay, clipping).
    """

    def __init__(self, models: Sequence[TaskModel], task: Task, cfg: Any):
        self.template, self.task, self.cfg = models[0], task, cfg
        self.params, _ = stack_module_state(list(models))  # name -> (k, ...) each
        self.buffers = dict(self.template.named_buffers())  # shared, unstacked: a forward writing one cannot be batched
        self.opt = stacked_optimizer(self.template, self.params, cfg)
        self.losses = _SeedLosses(task)

    def _one(self, p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, y: Tensor, noise: Tensor | None) -> Any:
        kwargs = {} if noise is None else {"noise": noise}
        return functional_call(self.template, (p, b), (x, y), kwargs)

    def draw_noise(self, inputs: Tensor) -> Tensor | None:
        """What the family draws at random in a training forward on inputs (from torch's global RNG)."""
        draw = getattr(self.template, "draw_noise", None)
        return None if draw is None else draw(inputs)

    def step(self, batches: Sequence[Batch], noises: Sequence[Tensor | None], lr: float) -> Tensor:
        """One optimizer step of every seed on its own batch (and noise); the seeds' losses (k,).

        Raises:
            ConfigError: torch.vmap cannot batch the family's forward (data-dependent control flow,
                a random draw inside it, a buffer it writes).
        """
        for group in self.opt.param_groups:
            group["lr"] = lr
        inputs = torch.stack([b.inputs for b in batches])  # (k, b, ...)
        targets = torch.stack([b.targets for b in batches])  # (k, b, n)
        drawn = [n for n in noises if n is not None]
        noise = torch.stack(drawn) if drawn else None  # (k, b, ...)
        self.template.train()
        batched = torch.vmap(self._one, in_dims=(0, None, 0, 0, None if noise is None else 0), randomness="error")
        try:
            logits, aux = split_output(batched(self.params, self.buffers, inputs, targets, noise))  # (k, b, n, o)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ConfigError(f"cannot train the seeds as one model: torch.vmap: {first}") from None
        losses = self.losses(logits, inputs, targets, list(batches))  # (k,)
        if aux is not None:
            losses = losses + aux  # (k,)
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        groups = clip_groups(self.template, self.params) if self.cfg.clip_each else ()
        clip_gradients_(list(self.params.values()), self.cfg.clip_norm, self.cfg.clip_each, stacked=True, groups=groups)
        self.opt.step()
        return losses.detach()


def train_seeds(
    configs: Sequence[RunConfig], folders: Sequence[str | Path], *, progress: bool = True, resume: bool = False
) -> list[dict[str, Any]]:
    """Train the runs (one config per seed, new folders) as one vectorised model; their test summaries.

    resume: continue the runs in folders from their checkpoints (all of one step) as one model;
    each config must be one `ensure` would continue its folder's run under (`plan` says "continue").

    Raises:
        ConfigError: naming why they cannot be trained together (`why_not_vectorised`), or that
            the family calls something vmap cannot batch (the first step tries).
    """
    reason = why_not_vectorised(configs, folders, resume=resume)
    if reason is not None:
        raise ConfigError(f"cannot train the seeds as one model: {reason}")
    cfg = configs[0].train
    device = resolve_device(cfg.device)
    with contextlib.ExitStack() as locks:
        seeds, task = _build_seeds(configs, folders, device, locks, resume=resume)
        return _train_stacked(seeds, task, progress)


def _train_stacked(seeds: list[_Seed], task: Task, progress: bool) -> list[dict[str, Any]]:
    """The loop of `train_seeds` over seeds whose folders are started (and locked)."""
    configs = [s.config for s in seeds]
    cfg = configs[0].train
    device = next(seeds[0].model.parameters()).device
    stack = SeedStack([s.model for s in seeds], task, cfg)
    if seeds[0].opt_state is not None:
        load_stacked_states(stack.opt, [s.opt_state for s in seeds if s.opt_state is not None])
    val = task.eval_set(cfg.eval_size, "val")
    step = seeds[0].state["step"]  # 0, or the checkpoint's step every continued seed shares
    bar = progress_bar(
        total=cfg.steps,
        initial=step,
        desc=f"{configs[0].model} on {configs[0].task} x{len(seeds)} seeds",
        unit="step",
        enabled=progress,
    )
    started = time.perf_counter()
    while step < cfg.steps and any(s.summary is None for s in seeds):
        batches: list[Batch] = []
        noises: list[Tensor | None] = []
        for seed in seeds:  # each seed's data and random draws from its own generators, as its run makes them
            seed.rng.restore()
            batches.append(task.sample(cfg.batch_size, seed.data_gen).to(device))
            noises.append(stack.draw_noise(batches[-1].inputs))
            seed.rng = GlobalRNG.capture()
        losses = stack.step(batches, noises, lr_at(step, cfg))
        step += 1
        bar.update(1)
        for seed, loss in zip(seeds, losses.tolist()):
            seed.losses.append(loss)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - started
            for k, seed in enumerate(seeds):
                if seed.summary is None:
                    _evaluate_seed(seed, k, step, seed.seconds_before + elapsed, task, val, stack)
    bar.close()
    return [s.summary or {} for s in seeds]


class _SeedLosses:
    """Each seed's task loss (k,): one vmapped call, or one call per seed where the loss cannot be vmapped."""

    def __init__(self, task: Task):
        self.task = task
        self.vmapped = True

    def __call__(self, logits: Tensor, inputs: Tensor, targets: Tensor, batches: list[Batch]) -> Tensor:
        if self.vmapped:
            try:
                return torch.vmap(lambda z, x, y: self.task.loss(z, Batch(x, y)))(logits, inputs, targets)  # (k,)
            except RuntimeError:  # data-dependent indexing (a mask of the answers that exist)
                self.vmapped = False
        return torch.stack([self.task.loss(logits[k], batch) for k, batch in enumerate(batches)])  # (k,)


def _build_seeds(
    configs: Sequence[RunConfig],
    folders: Sequence[str | Path],
    device: torch.device,
    locks: contextlib.ExitStack,
    *,
    resume: bool = False,
) -> tuple[list[_Seed], Task]:
    """Each seed's model built as its own run builds it, its folder started (or, resume, its
    checkpoint restored) and locked (held by `locks`); the (shared) task."""
    seeds, task = [], None
    for config, folder in zip(configs, map(Path, folders)):
        seed_everything(config.train.seed)
        built_task, model = build_task_and_model(config, folder if resume else None)
        model.to(device)
        set_path(model, config.train.path)
        task = task or built_task
        if not resume:
            folder.mkdir(parents=True, exist_ok=True)
        locks.enter_context(checkpoint.lock(folder))
        data_gen = torch.Generator().manual_seed(config.train.seed + 1)
        state: dict[str, Any] = {"step": 0, "best": None, "train_seconds": 0.0, "stopped_early": False}
        seed = _Seed(config, folder, model, GlobalRNG.capture(), data_gen, state, [])
        if resume:  # as `train(resume=True)`: the folder is left as it is until the first checkpoint
            checkpoint.clean_temporaries(folder)
            opt = make_optimizer(model, config.train)
            state.update(restore_trainer(folder, model, opt, data_gen))
            state["stopped_early"] = state["stopped_early"] and reached(
                state["best"], config.train.target, built_task.maximize
            )
            seed.rng, seed.opt_state = GlobalRNG.capture(), opt.state_dict()
            seed.seconds_before, seed.resumed_from = state["train_seconds"], state["step"]
        else:
            checkpoint.check_new_run_dir(folder)  # under the lock: no other process started it meanwhile
            checkpoint.save_config(folder, config.to_dict())
            built_task.save_assets(folder)
        seeds.append(seed)
    assert task is not None
    return seeds, task


@torch.no_grad()
def _load_slice(seed: _Seed, k: int, params: dict[str, Tensor]) -> None:
    for name, param in seed.model.named_parameters():
        param.copy_(params[name][k])


def _evaluate_seed(
    seed: _Seed,
    k: int,
    step: int,
    seconds: float,
    task: Task,
    val: Batch,
    stack: SeedStack,
) -> None:
    """What the loop does at an evaluation, for seed k: metrics record, checkpoint, and the end."""
    cfg = seed.config.train
    opt, buffers = stack.opt, stack.buffers
    _load_slice(seed, k, stack.params)
    metrics = evaluate(seed.model, task, val)
    on_eval = getattr(seed.model, "on_eval", None)
    scheduled = (on_eval(step, metrics) if on_eval is not None else None) or {}
    for name, buffer in seed.model.named_buffers():
        if not torch.equal(buffer, buffers[name]):
            raise RunError(f"{seed.folder}: buffer {name} changed for one seed; the seeds cannot share one model")
    if not all(math.isfinite(loss) for loss in seed.losses) or not all(
        bool(torch.isfinite(p).all()) for p in seed.model.parameters()
    ):
        raise DivergenceError(
            f"{seed.folder}: by step {step}: the loss or the weights went non-finite; stopped (the last "
            "checkpoint is kept); lower train.lr"
        )
    value = metrics[task.metric]
    state = seed.state
    state["step"] = step
    improved = math.isfinite(value) and (
        state["best"] is None or (value > state["best"] if task.maximize else value < state["best"])
    )
    if improved:
        state["best"] = value
    state["stopped_early"] = reached(value, cfg.target, task.maximize)
    state["train_seconds"] = seconds
    record = {
        "step": step,
        "split": "val",
        "lr": opt.param_groups[0]["lr"],
        "train_loss": sum(seed.losses) / len(seed.losses),
        **metrics,
        **scheduled,
        "seconds": round(seconds, 3),
    }
    seed.losses.clear()
    trainer = trainer_state(seed.model, seed_optimizer_state(opt, k), seed.data_gen, state, seed.rng)
    if seed.resumed_from is not None:  # a continued run's folder changes at its first write, as in `train`
        checkpoint.truncate_metrics(seed.folder, seed.resumed_from)
        checkpoint.save_config(seed.folder, seed.config.to_dict())
        seed.resumed_from = None
    checkpoint.save_checkpoint(seed.folder, seed.model, record, trainer, improved=improved, keep=cfg.keep_checkpoints)
    if state["stopped_early"] or step >= cfg.steps:
        test = evaluate(seed.model, task, task.eval_set(cfg.eval_size, "test"))
        seed.summary = {
            "step": step,
            "split": "test",
            **test,
            "best_val": state["best"],
            "stopped_early": state["stopped_early"],
            "seconds": round(seconds, 3),
            "parameters": sum(p.numel() for p in seed.model.parameters()),
        }
        checkpoint.append_metrics(seed.folder, seed.summary)


def ensure_seeds(
    configs: Sequence[RunConfig], folders: Sequence[str | Path], *, progress: bool = False
) -> list[dict[str, Any]]:
    """Test summaries of the runs, training only what their folders lack, as few models as possible.

    Each folder is taken as `ensure` takes it (`plan`): a finished run is reused; the new runs train
    as one model, and so do the runs to be continued whose checkpoints are at one step (a stacked
    run that was killed), when `why_not_vectorised` allows; everything else goes through `ensure`
    one by one.
    """
    plans = [plan(config, folder) for config, folder in zip(configs, folders)]
    summaries = {i: summary for i, (action, summary) in enumerate(plans) if action == "reuse" and summary}
    groups: list[tuple[list[int], bool]] = [([i for i, (action, _) in enumerate(plans) if action == "train"], False)]
    at_step: dict[int, list[int]] = {}
    for i, (action, _) in enumerate(plans):
        if action == "continue":
            at_step.setdefault(checkpoint.load_trainer(Path(folders[i]), tensors=False)[1]["step"], []).append(i)
    groups += [(members, True) for members in at_step.values()]
    for members, resume in groups:
        chosen, where = [configs[i] for i in members], [folders[i] for i in members]
        if why_not_vectorised(chosen, where, resume=resume) is not None:
            continue
        try:
            trained = train_seeds(chosen, where, progress=progress, resume=resume)
        except ConfigError as err:  # vmap cannot batch the family: the first step failed, no checkpoint written
            print(f"attnlab: training the seeds one by one: {err}", flush=True)
            trained = []
        summaries.update(zip(members, trained))
    for i, (config, folder) in enumerate(zip(configs, folders)):
        if i not in summaries:
            summaries[i] = ensure(config, folder, progress=progress)
    return [summaries[i] for i in range(len(configs))]
