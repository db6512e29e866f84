"""Guided glimpse runs and what they are made of (benchmarks/glimpse.py's `oracle`, `split` and `runlength`):
training with the guide's views (attnlab.glimpse.guide) for all or the first steps of a run, resumable;
the error split between policy and classifier, and fitting and generalising; where the glimpses go; and
the schedule length a power law puts a missed target at."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

import common
from attnlab.core import capture
from attnlab.glimpse import box_centres, guide, sampled_errors
from attnlab.progress import progress_bar
from attnlab.train import build_task_and_model, load_run, resolve
from attnlab.train.checkpoint import atomic_write, save_config, save_weights
from glimpse_settings import PAIRS, SETTINGS, precision, run_config


def inside_boxes(looked: torch.Tensor, boxes: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """Whether each location falls in a box: looked (r, g, 2) (row, col) in [-1, 1] on y x x canvases, boxes
    (r, 4) or (r, K, 4) (top, left, height, width) in pixels -> (r, g) bool, True inside any of an image's."""
    pixel = (looked + 1) * torch.tensor([(y - 1) / 2, (x - 1) / 2])  # (r, g, 2) row, col in pixels
    boxes = boxes.to(torch.float32).view(len(boxes), -1, 4)  # (r, K, 4)
    top_left, size = boxes[:, None, :, :2], boxes[:, None, :, 2:]  # (r, 1, K, 2) each
    return ((pixel[:, :, None] >= top_left) & (pixel[:, :, None] <= top_left + size - 1)).all(-1).any(-1)  # (r, g)


@torch.no_grad()
def glimpse_distances(run, chunk: int = 1000) -> dict:
    """Where the policy's means looked against the digit, glimpse by glimpse (do later glimpses stay on it or
    drift away?): the median distance in pixels to the digit's centre, the share inside the digit's box, and
    the test error of the images whose last glimpse is inside the box against those whose last is not."""
    batch = run.task.eval_set(10**9, "test")
    y, x = batch.inputs.shape[-2:]
    boxes = run.task.boxes("test").to(torch.float32)  # (r, 4) top, left, height, width
    centres = box_centres(boxes, y, x)  # (r, 2)
    run.model.eval()
    outs = [run.model.ram(batch.inputs[i : i + chunk]) for i in range(0, len(batch), chunk)]
    looked = torch.cat([o.locations for o in outs])  # (r, g, 2)
    right = torch.cat([o.logits.argmax(-1) for o in outs]) == batch.targets[:, 0]  # (r,)
    scale = torch.tensor([(y - 1) / 2, (x - 1) / 2])  # pixels per unit of location
    apart = ((looked - centres[:, None]) * scale).norm(dim=-1)  # (r, g)
    inside = inside_boxes(looked, boxes, y, x)  # (r, g)
    last = inside[:, -1]  # (r,)
    return {
        "distance_px": apart.median(dim=0).values.tolist(),
        "inside_box": inside.float().mean(0).tolist(),
        "error_last_inside": 1 - right[last].float().mean().item() if last.any() else None,
        "error_last_outside": 1 - right[~last].float().mean().item() if (~last).any() else None,
    }


EDGE = 0.95  # `dram_glimpses`: a location with a coordinate this far out looks from the canvas's edge


@torch.no_grad()
def dram_glimpses(run, chunk: int = 1000) -> dict:
    """Where a DRAM's policy means look on its test canvases, glimpse by glimpse: the share inside either
    object's box, the share at the canvas's edge (a coordinate at EDGE or beyond), and the test error of
    the canvases with a glimpse at the edge against those without."""
    from attnlab.viz.glimpse import glimpse_paths  # here, not at the top: it brings matplotlib

    test = run.task.eval_set(10**9, "test")
    model = run.model.eval()
    rights, paths = [], []
    for i in range(0, len(test), chunk):
        with capture(model) as trace:
            rights.append(all_right(model(test.inputs[i : i + chunk]), test.targets[i : i + chunk]))  # (c,)
        paths.append(glimpse_paths(trace)[0])  # (c, N, 2)
    right, looked = torch.cat(rights), torch.cat(paths)  # (r,), (r, N, 2)
    inside = inside_boxes(looked, test.boxes, *test.inputs.shape[-2:])  # (r, N)
    edge = (looked.abs() >= EDGE).any(-1)  # (r, N)
    any_edge = edge.any(-1)  # (r,)
    return {
        "inside_a_box": inside.float().mean(0).tolist(),
        "at_edge": edge.float().mean(0).tolist(),
        "error_with_edge": 1 - right[any_edge].float().mean().item() if any_edge.any() else None,
        "error_without_edge": 1 - right[~any_edge].float().mean().item() if (~any_edge).any() else None,
    }


def late_at_digit(run) -> dict[int, float]:
    """Does the drift of later glimpses cost accuracy? A RAM on one digit tested with its glimpses n..g at the
    digit's centre and glimpses 1..n-1 where its policy's means go (`guide.guided_view_error`'s first):
    n -> test error, for n from g/2 + 1 to g."""
    test = run.task.eval_set(10**9, "test")
    glimpses = run.model.ram.config.num_glimpses
    return {
        n: guide.guided_view_error(run.model.ram, test.inputs, test.boxes, test.targets, first=n)
        for n in range(glimpses // 2 + 1, glimpses + 1)
    }


def guided_view_error(model, task, order: str = "value") -> float:
    """Test error of a trained glimpse family glimpsing where its guide looks (attnlab.glimpse.guide), on the
    task's test canvases: with the policy's error, it splits the error between policy and classifier."""
    test = task.eval_set(10**9, "test")
    return guide.guided_view_error(glimpse_network(model), test.inputs, test.boxes, test.targets, order)


def glimpse_network(model):
    """The RAM or DRAM inside a glimpse family."""
    return model.dram if hasattr(model, "dram") else model.ram


def set_location_std(model, std: float) -> None:
    """The location policy's std from now on (its config is otherwise fixed for the run)."""
    network = glimpse_network(model)
    network.config = replace(network.config, location_std=std)


def std_at(step: int, start_step: int, steps: int, start: float, end: float) -> float:
    """--location-std-end: the std at `step`, from `start` at start_step (the hand-over) down a cosine to `end`
    at the last step: wide draws while the policy explores, narrow ones (its means' views) as it settles."""
    done = min(1.0, (step - start_step) / max(1, steps - 1 - start_step))
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * done))


def all_right(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits (b, K, o), targets (b, K) -> (b,) bool: every answer of a canvas right (K labels, or one)."""
    return (logits.argmax(-1) == targets).all(-1)


@torch.no_grad()
def policy_error(model, test, chunk: int = 1000) -> float:
    """Test error with the model's own glimpses (its policy's means): every answer of a canvas right."""
    model.eval()
    right = sum(int(all_right(model(test.inputs[i : i + chunk]), test.targets[i : i + chunk]).sum())
                for i in range(0, len(test), chunk))  # fmt: skip
    return 1 - right / len(test)


RESUME = "oracle-resume.pt"  # an unfinished `oracle` run's state, in its folder under --runs


def save_oracle(
    folder: Path, recorded: dict, step: int, model, optimizer, generator, curve: list[dict], seconds: float
) -> None:
    """Keep an `oracle` run's state after `step` steps (weights, optimizer, both generators, its curve so
    far, the seconds spent), written whole or not at all, so that a killed run resumes there (`resume_oracle`)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {"recorded": recorded, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "curve": curve,
             "seconds": seconds}  # fmt: skip
    atomic_write(folder / RESUME, lambda path: torch.save(state, path))


def resume_oracle(folder: Path, recorded: dict, model, optimizer, generator) -> tuple[int, list[dict], float]:
    """The step to start from, the curve so far and the seconds spent: from the state `save_oracle` kept
    in folder for the same command (else from the start, the state of another command set aside)."""
    path = folder / RESUME
    if not path.exists():
        return 0, [], 0.0
    state = torch.load(path, weights_only=True)
    if state["recorded"] != json.loads(json.dumps(recorded)):
        path.replace(folder / f"{RESUME}.other")
        print(f"{path}: kept by another command; set aside as {RESUME}.other, starting over", flush=True)
        return 0, [], 0.0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    print(f"{path}: resuming at step {state['step']}", flush=True)
    spent = state.get("seconds", state["curve"][-1]["seconds"] if state["curve"] else 0.0)  # kept at evaluations only
    return state["step"], state["curve"], spent


def train_step(args, model, task, batch, optimizer, clip_norm: float, guided: bool, own: bool) -> None:
    """One `oracle` step: with own (a guided run past its guided steps) the recipe's step (the policy on its
    own, attnlab.train.loop.optimizer_step); else the guide's (attnlab.glimpse.guide.guide_loss: imitating
    when guided, an oracle's views when not)."""
    from attnlab.train.loop import apply_gradients, optimizer_step

    if guided and own:
        optimizer_step(model, model, task, batch, optimizer, clip_norm, precision=precision(args))
        return
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):  # as optimizer_step's precision
        loss = guide.guide_loss(glimpse_network(model), batch.inputs, batch.boxes, batch.targets, imitate=guided,
                                order=args.guide_order, trains_core=guided and args.guide_trains_core,
                                baseline=args.guide_baseline, jitter=args.guide_jitter)  # fmt: skip
    apply_gradients(loss, model, optimizer, clip_norm)


def oracle_policy(args) -> dict:
    """RAM's glimpse and core networks and classifier trained and tested with a perfect policy: every glimpse
    at the digit's centre (the true box), cross-entropy only. Its test error is what the classifier gets
    when the policy is not in the way: the learned policy costs the difference.

    With --guide-steps N (0 < N < steps), the first N steps are guided instead (attnlab.glimpse.guide.guide_loss:
    the policy imitates the digit's centres), the remaining steps are the recipe's own
    (attnlab.train.loop.optimizer_step: the policy samples, and REINFORCE trains it), and the test is the policy's, at its means. With dram in
    --models the model is DRAM, on the pairs canvases (guided only: each label's glimpses at its digit).
    With --location-std-end S the policy's std falls from the config's at the hand-over to S at the last
    step (`std_at`); the sampled paths scored at the end are drawn with S."""
    from attnlab.train.distributed import slow_bfloat16
    from attnlab.train.loop import guided_at, lr_at, make_optimizer, seed_everything

    meta = common.machine()
    result = {"command": meta["command"], "date": meta["date"], "machine": meta, "settings": {}}
    guided = 0 < args.guide_steps < args.steps
    name = "dram" if "dram" in args.models.split(",") else "ram"
    if (name == "dram" or not set(args.settings.split(",")) <= set(SETTINGS)) and not guided:
        raise SystemExit(
            "glimpse.py oracle: DRAM, and RAM on two digits, are guided only (--guide-steps N, 0 < N < --steps)"
        )
    two_digits = any(setting in PAIRS for setting in args.settings.split(","))
    extra = {"guide_order": args.guide_order} if name == "dram" or two_digits else {}  # recorded with two digits
    extra.update({k: True for k in ("guide_baseline", "guide_jitter") if getattr(args, k)})  # recorded when set
    if args.guide_every and not guided:
        raise SystemExit("glimpse.py oracle: --guide-every needs a guided run (--guide-steps N)")
    if args.location_std_end:
        if not guided:
            raise SystemExit("glimpse.py oracle: --location-std-end needs a guided run (--guide-steps N)")
        extra["location_std_end"] = args.location_std_end
    if args.bf16 and (slow := slow_bfloat16(torch.device("cpu"))):
        print(slow, file=sys.stderr, flush=True)
    for setting in args.settings.split(","):
        rows = {}
        for seed in args.seeds:
            values = run_config(args, setting, name, seed)
            config = resolve(values)
            seed_everything(seed)
            task, model = build_task_and_model(config)
            cfg = replace(config.train, guide_steps=args.guide_steps)  # guided_at's steps: the first N, every K
            optimizer, generator = make_optimizer(model, cfg), torch.Generator().manual_seed(seed)
            test = task.eval_set(10**9, "test")
            folder = args.runs / setting / f"{name}-{'guided' if guided else 'oracle'}-s{seed}"  # its weights, resume
            recorded = dict(values, guide_steps=args.guide_steps, guide_trains_core=args.guide_trains_core, **extra)
            start_std = glimpse_network(model).config.location_std
            first, curve, seconds = resume_oracle(folder, recorded, model, optimizer, generator)
            start = time.perf_counter() - seconds
            bar = progress_bar(total=cfg.steps, initial=first, desc=f"{name} on {setting} seed {seed}", unit="step")
            for step in range(first, cfg.steps):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg)
                batch = task.sample(cfg.batch_size, generator)
                if args.location_std_end and step >= args.guide_steps:
                    set_location_std(model, std_at(step, args.guide_steps, cfg.steps, start_std, args.location_std_end))
                train_step(args, model, task, batch, optimizer, cfg.clip_norm, guided, not guided_at(step + 1, cfg))
                bar.update(1)
                evaluated = (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps
                if evaluated:
                    model.eval()
                    error = policy_error(model, test) if guided else guided_view_error(model, task)
                    curve.append({"step": step + 1, "test_error": error, "seconds": time.perf_counter() - start})
                    bar.write(f"{setting} {name} {'guided' if guided else 'oracle'} policy seed {seed} step {step + 1}: "
                              f"test error {error:.2%}", file=sys.stdout)  # fmt: skip
                    sys.stdout.flush()  # the line in a log as it happens
                kept = evaluated or (args.save_every and (step + 1) % args.save_every == 0)  # and between them
                if kept and step + 1 < cfg.steps:
                    save_oracle(
                        folder, recorded, step + 1, model, optimizer, generator, curve, time.perf_counter() - start
                    )
            bar.close()
            rows[str(seed)] = {"test_error": curve[-1]["test_error"], "curve": curve, "config": values,
                               "guide_steps": args.guide_steps if guided else None,
                               "guide_trains_core": guided and args.guide_trains_core, **extra}  # fmt: skip
            if guided:
                scored = sampled_errors(model, test.inputs, test.targets, samples=args.samples)
                rows[str(seed)].update(
                    single_sample_error=scored.single,
                    averaged_error=scored.averaged,
                    guided_view_error=guided_view_error(model, task, args.guide_order),
                )
                folder.mkdir(parents=True, exist_ok=True)  # the trained model, for `figures`
                save_config(folder, values)
                save_weights(folder, model)
                rows[str(seed)]["run"] = str(folder)
            (folder / RESUME).unlink(missing_ok=True)
        result["settings"][setting] = rows
    return result


TRAIN_CANVASES = 10000  # `split`: training canvases scored beside the test set, drawn with seed 0


def split(args) -> dict:
    """Policy or classifier, and fitting or generalising: each saved run in --run-folders tested at its policy's
    means and where its guide looks (`guided_view_error`, in --guide-order), the difference being what its
    policy costs; and at its policy's means on TRAIN_CANVASES fresh canvases of training digits
    ("train_error"): near its test error, the model has not yet fitted what it was trained on (a longer run
    or a larger model, not regularisation, is what would lower it); far below, it has and does not generalise.
    A RAM on one digit also gets where its glimpses went (`glimpse_distances`) and what their drift costs
    (`late_at_digit`); a DRAM, where its glimpses went against the two boxes and the canvas's edge
    (`dram_glimpses`)."""
    result = {"command": common.machine()["command"], "guide_order": args.guide_order, "runs": {}}
    for folder in args.run_folders:
        run = load_run(folder)
        test = run.task.eval_set(10**9, "test")
        train = run.task.sample(TRAIN_CANVASES, torch.Generator().manual_seed(0))
        row = {
            "policy_error": policy_error(run.model, test),
            "guided_view_error": guided_view_error(run.model, run.task, args.guide_order),
            "train_error": policy_error(run.model, train),
        }
        print(
            f"{folder}: test error {row['policy_error']:.2%} at the policy's means, "
            f"{row['guided_view_error']:.2%} where the guide looks; {row['train_error']:.2%} on "
            f"{TRAIN_CANVASES:,} training canvases",
            flush=True,
        )
        if hasattr(run.model, "ram") and test.boxes is not None and test.boxes.dim() == 2:  # RAM on one digit
            row["glimpses"] = glimpse_distances(run)
            row["late_at_digit"] = late_at_digit(run)
            print(f"  median pixels from the digit, glimpse by glimpse: "
                  f"{', '.join(f'{d:.1f}' for d in row['glimpses']['distance_px'])}; glimpses n.. at the digit: "
                  f"{', '.join(f'n={n} {e:.2%}' for n, e in row['late_at_digit'].items())}", flush=True)  # fmt: skip
        if hasattr(run.model, "dram") and test.boxes is not None:
            row["glimpses"] = dram_glimpses(run)
            shares = row["glimpses"]
            print(f"  glimpse by glimpse, inside a digit's box: {', '.join(f'{v:.0%}' for v in shares['inside_a_box'])}; "
                  f"at the canvas's edge: {', '.join(f'{v:.0%}' for v in shares['at_edge'])}", flush=True)  # fmt: skip
        result["runs"][str(folder)] = row
    return result


RECIPE_FREE = ("steps", "eval_every", "seed")  # `runlength`: the train fields runs of one recipe may differ in


def recipe(row: dict) -> dict:
    """An `oracle` seed row's recipe: its config and guide options, less its length, evaluation interval and
    seed."""
    config = json.loads(json.dumps(row["config"]))
    config["train"] = {k: v for k, v in config["train"].items() if k not in RECIPE_FREE}
    options = {k: v for k, v in row.items() if k.startswith("guide_") or k == "location_std_end"}
    return {"config": config, **options}


def flat(values: dict, prefix: str = "") -> dict:
    """A nested dict's leaves by dotted name: {"train": {"lr": 1}} -> {"config.train.lr": 1} with prefix "config."."""
    out = {}
    for key, value in values.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def run_length(args) -> dict:
    """The schedule that would reach a missed target: each of --results (`oracle` runs of one recipe, in
    --settings' one setting) gives its mean test error over seeds at its schedule's length, a power law
    through those (attnlab.train.scaling.fit_power_law) puts --target (else the paper's figure for the
    model) at a length, and each length's error is set beside what the law gives it; with --at, the law's
    error at other lengths too (a longer run's, to check the law against it when it lands)."""
    from attnlab.train.scaling import fit_power_law

    (setting,) = args.settings.split(",")
    by_length: dict[int, list[float]] = {}
    first = None
    for path in args.results:
        rows = json.loads(path.read_text())["settings"].get(setting)
        if not rows:
            raise SystemExit(f"glimpse.py runlength: {path}: no runs on {setting}")
        for seed, row in rows.items():
            if first is None:
                first = (path, recipe(row))
            elif recipe(row) != first[1]:
                mine, theirs = flat(recipe(row)), flat(first[1])
                differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
                raise SystemExit(f"glimpse.py runlength: {path} seed {seed}: another recipe than {first[0]}'s "
                                 f"({', '.join(differ)} differ; runs may differ only in train.{', train.'.join(RECIPE_FREE)})")  # fmt: skip
            by_length.setdefault(row["curve"][-1]["step"], []).append(row["test_error"])
    assert first is not None  # --results is required and each file had rows
    model = first[1]["config"]["model"]["name"]
    target = args.target or (SETTINGS | PAIRS)[setting]["paper"].get(model)
    if not target:
        raise SystemExit(f"glimpse.py runlength: no paper figure for {model} on {setting}; give --target")
    points = [(steps, sum(errors) / len(errors)) for steps, errors in sorted(by_length.items())]
    try:
        law = fit_power_law(points)
    except ValueError as error:  # one length only
        raise SystemExit(f"glimpse.py runlength: {error}") from None
    for steps, error in points:
        print(f"{steps:,} steps: {error:.2%} over {len(by_length[steps])} seed(s), the law {law.at(steps):.2%}")
    needed = law.steps_for(target)
    print(f"error = {law.a:.3g} * steps^-{law.b:.3f} (x {2**-law.b:.3f} a doubling): {target:.2%} at "
          f"{needed:,.0f} steps", flush=True)  # fmt: skip
    predicted = {str(steps): law.at(steps) for steps in args.at}
    for steps, error in predicted.items():
        print(f"the law at {int(steps):,} steps: {error:.2%}")
    return {"command": common.machine()["command"], "setting": setting, "model": model, "target": target,
            "recipe": first[1], "points": [{"steps": s, "test_error": e, "seeds": len(by_length[s]), "law": law.at(s)}
                                           for s, e in points],
            "a": law.a, "b": law.b, "doubling": 2**-law.b, "steps_for_target": needed, "predicted": predicted}  # fmt: skip
