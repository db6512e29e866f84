"""Training and decoding speed of attnlab on this CPU: its step paths, seed stacks, and Hugging Face.

Eight sections, each run in one process and each with its variants interleaved (every round runs
every variant once, in a fresh seeded random order, after warm-up calls); figures are medians
over the rounds, ratios the median of the per-round paired ratios with a bootstrap 95% interval
of that median (`common.median_ci`), as in benchmarks/attention.py.

    families     one training step (sample, forward, loss, backward, clip, AdamW) of every
                 registered family on its default task, with `train.path` eager, fast and
                 compiled (families without a FastPath module run "fast" only); compile seconds
                 (attnlab.core.fast.seconds_compiling: forward and backward graphs) paid in the
                 warm-up, and beside them the seconds of the first warm-up call
    seeds        one `SeedStack.step` of K = 10 seeds trained as one vectorised model against
                 one ordinary single-seed step of the same family (path "fast"); target K-step
                 time <= 2x the single step
    transformer  a BERT-shaped training step (4 layers, d 256, 4 heads, ff 1024, t 128, b 16,
                 a 30522-way head at every position): attnlab's "transformer" family on the
                 "fast" and "compiled" paths against Hugging Face `BertForMaskedLM` with eager and
                 SDPA attention, each uncompiled and torch.compile'd; tokens/s, and MFU against
                 the fp32 matmul rate of the step's own GEMM shapes measured in the same rounds
    decoding     greedy decoding of a GPT-2-shaped model (6 layers, d 384, 6 heads, vocab 50257,
                 batch 1, a 16-token prompt) for 128 and 1024 new tokens: `DecoderLM.generate`
                 on each path, and without a cache, against HF `GPT2LMHeadModel.generate`;
                 targets >= 3x HF tokens/s and >= 15x the recomputing decoder at 1024 tokens
    precision    one training step of DRAM, RAM and the CNN on the 100x100 canvases of
                 benchmarks/glimpse.py with train.precision float32 and bfloat16 (CPU autocast)
    reader       forward and backward of attnlab.glimpse.retina.patch_conv (its input stored channels
                 last) against the same operations on channels-first storage, float32 and bfloat16
    trunk        one training step of the CNN and soft attention on the 100x100 sum canvases and on
                 the tour's 60x60 ones, their ConvTrunk as built (weights and images channels last)
                 against the same model with the trunk's weights channels first (channels first
                 throughout), float32 and bfloat16
    order        patch_conv's forward and backward at DRAM's two reader widths, and one training step of
                 the CNN and soft attention on the 100x100 sum canvases, as built (each 2x2 max pooling
                 before its ReLU) against ReLU first (the same values: both keep order), float32

A section, family or variant whose API is missing or raises is skipped with a one-line reason.

    python benchmarks/speed.py                                  # the full run (data: env ATTNLAB_DATA)
    python benchmarks/speed.py --data-dir ../shared/data        # bAbI 1k and MNIST from that folder
    python benchmarks/speed.py --quick                          # a smoke run: tiny sizes, 2 rounds
    python benchmarks/speed.py --sections seeds,decoding --repeats 5

Writes benchmarks/results/speed.json (speed-quick.json under --quick): settings, every variant's
times, medians and intervals, the ratios, the targets with pass/miss flags, and the machine.
"""

from __future__ import annotations

import argparse
import inspect
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import common
from attnlab.core.fast import COMPILE_SECONDS, FALLBACKS, seconds_compiling, set_path
from attnlab.models import MODELS, TaskModel
from attnlab.progress import progress_bar
from attnlab.tasks.base import Task
from attnlab.train.loop import make_optimizer, optimizer_step, seed_everything
from attnlab.train.run import RunConfig, TrainConfig, build_task_and_model, resolve

SECTIONS = ("families", "seeds", "transformer", "decoding", "precision", "reader", "trunk", "order")
PATHS = ("eager", "fast", "compiled")
# Each family's default task and batch; families not named here are sequence families on long_range.
FAMILY_TASKS: dict[str, tuple[str, int]] = {
    "ntm": ("ntm_copy", 16),
    "dnc": ("ntm_copy", 16),
    "ram": ("digits", 64),
    "image_cnn": ("digits", 64),
    "image_mlp": ("digits", 64),
    "soft_attention": ("digits", 64),
    "bahdanau": ("translate", 64),
    "luong": ("translate", 64),
    "seq2seq": ("translate", 64),
    "memn2n": ("babi", 32),
    "kvmemnn": ("babi", 32),
}
SEQUENCE_TASK = ("long_range", 64)
# The precision section's runs: the glimpse benchmarks' 100x100 canvases and models (benchmarks/glimpse.py),
# family -> (task, model config, batch).
PRECISION_RUNS: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "dram": ({"name": "digit_pairs", "target": "sum"}, {"glimpse_size": 12, "num_scales": 4, "glimpses_per_label": 6,
             "what_net": "conv", "glimpse_hidden": 256}, 128),
    "ram": ({"name": "digits", "setting": "cluttered", "size": 100, "distractors": 8},
            {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8}, 128),
    "image_cnn": ({"name": "digit_pairs", "target": "sum"}, {"pooling": "flatten", "channels": [16, 32]}, 128),
}  # fmt: skip
# The `trunk` section's runs: (family, canvases, task, model, batch), on the sum's canvases and on the tour's.
TOUR_CANVASES = {"name": "digits", "setting": "cluttered", "size": 60, "distractors": 4, "source": "small"}
TRUNK_RUNS = tuple((family, canvases, task, {"channels": [16, 32], **extra}, batch)
                   for family, extra in (("image_cnn", {"pooling": "flatten"}), ("soft_attention", {}))
                   for canvases, task, batch in (("sum 100x100", PRECISION_RUNS["image_cnn"][0], 128),
                                                 ("tour 60x60", TOUR_CANVASES, 64)))  # fmt: skip
QUICK_COMPILED = "transformer"  # the one family --quick compiles: its tiny graph compiles fastest
SEED_FAMILIES = ("memn2n", "ram", "ntm", "dnc", "kvmemnn", "lstm")
TARGETS = {
    "family_ntm": 5.0,  # steps/s of the best of fast and compiled / steps/s of eager, at least
    "family_dnc": 5.0,
    "family_ram": 2.0,
    "family_bahdanau": 2.0,
    "family_luong": 2.0,
    "transformer_vs_hf": 1.25,  # attnlab's best tokens/s / HF sdpa's uncompiled, at least
    "transformer_vs_hf_compiled": 1.0,  # attnlab compiled tokens/s / the best compiled HF's, at least
    "seeds": 2.0,  # K-seed step seconds / single-seed step seconds, at most
    "decoding_vs_hf": 3.0,  # attnlab greedy tokens/s / HF tokens/s at the longest length, at least
    "cache_vs_recompute": 15.0,  # KV-cached tokens/s / recomputing tokens/s at the longest length, at least
}


@dataclass(frozen=True)
class Sizes:
    """Every size a run uses; FULL is the benchmark, QUICK a smoke run of the same code."""

    batch_scale: float  # family batch = max(2, round(default batch * scale))
    task_overrides: dict[str, dict[str, Any]]  # task name -> config fields over the defaults
    babi_real: bool  # bAbI 1k joint from the data folder when it holds babi/ (else generated)
    seeds: int  # K of the seeds section
    bert: dict[str, int]  # layers, d, heads, ff, t, b, vocab of the transformer section
    gpt: dict[str, int]  # layers, d, heads, vocab, prompt of the decoding section
    new_tokens: tuple[int, ...]  # decoding lengths; the last one carries the targets


FULL = Sizes(
    batch_scale=1.0,
    task_overrides={},
    babi_real=True,
    seeds=10,
    bert={"layers": 4, "d": 256, "heads": 4, "ff": 1024, "t": 128, "b": 16, "vocab": 30522},
    gpt={"layers": 6, "d": 384, "heads": 6, "vocab": 50257, "prompt": 16},
    new_tokens=(128, 1024),
)
QUICK = Sizes(
    batch_scale=1 / 16,
    task_overrides={
        "ntm_copy": {"max_length": 3},
        "translate": {"toy_pairs": 200},
        "long_range": {"distance": 8, "jitter": 2},
        "babi": {"generated_stories": 25, "generated_story_len": 5},
    },
    babi_real=False,
    seeds=2,
    bert={"layers": 1, "d": 32, "heads": 2, "ff": 64, "t": 16, "b": 2, "vocab": 1000},
    gpt={"layers": 1, "d": 32, "heads": 2, "vocab": 1000, "prompt": 4},
    new_tokens=(8, 32),
)


# ---------------------------------------------------------------- timing


@dataclass
class Variant:
    """One thing to time: a callable doing one unit of work (a step, a generation)."""

    name: str
    run: Callable[[], object]
    limit: int | None = None  # timed rounds at most (the first ones); None: every round
    compiles: bool = False  # runs through torch.compile: warmed up longer (compiling, a dynamic-shape recompile)
    warmup: int | None = None  # warm-up calls; None: the section's for compiled variants, else 1
    times: list[float] = field(default_factory=list)
    first_s: float | None = None  # seconds of the first warm-up call (compiling, lazy set-up)
    compile_s: float = 0.0  # seconds_compiling() added during the warm-up
    error: str | None = None  # why it was dropped

    def call(self) -> float:
        start = time.perf_counter()
        self.run()
        return time.perf_counter() - start


def one_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def graphs_compiled() -> int:
    """torch._dynamo's count of graphs compiled in this process (0 before anything compiled)."""
    from torch._dynamo.utils import counters  # imported here: torch._dynamo is slow to import

    return int(counters["stats"]["unique_graphs"])


@dataclass
class Block:
    """The variants of one interleaved block that ran, and graphs compiled during its timed rounds."""

    ran: list[Variant]
    graphs_while_timed: int | None  # None: nothing in the block compiles


def interleave(variants: list[Variant], repeats: int, warmup: int, seed: int, desc: str, *,
               compiles: bool = False) -> Block:  # fmt: skip
    """Warm each variant up, then `repeats` rounds, each in a fresh seeded random order.

    A variant that raises is dropped, its reason in `error` (in a timed round too). With compiles,
    the graphs torch._dynamo compiles during the timed rounds are counted: a compiled step that
    recompiles as it runs shows up there.
    """
    for v in variants:
        compiled_before = seconds_compiling()
        try:
            calls = v.warmup if v.warmup is not None else warmup if v.compiles else min(warmup, 1)
            for n in range(calls):
                seconds = v.call()
                if n == 0:
                    v.first_s = seconds
        except Exception as err:  # a path, model or library this build lacks: report it, go on
            v.error = one_line(err)
            print(f"  {desc} {v.name}: skipped: {v.error}", flush=True)
        v.compile_s = seconds_compiling() - compiled_before
    live = [v for v in variants if v.error is None]
    graphs = graphs_compiled() if compiles else 0
    rng = np.random.default_rng(seed)
    with progress_bar(total=repeats, desc=desc, unit="round") as bar:
        for r in range(repeats):
            for n in rng.permutation(len(live)):
                v = live[n]
                if v.error is not None or (v.limit is not None and r >= v.limit):
                    continue
                try:
                    v.times.append(v.call())
                except Exception as err:
                    v.error = one_line(err)
                    print(f"  {desc} {v.name}: dropped in round {r}: {v.error}", flush=True)
            bar.update(1)
    after = graphs_compiled() - graphs if compiles else None
    return Block([v for v in variants if v.error is None and v.times], after)


def timing(v: Variant, work: float, unit: str) -> dict[str, Any]:
    """A variant's median seconds with its interval, and `work / seconds` in `unit` with its interval."""
    times = np.asarray(v.times)  # (r,)
    stats = common.median_ci(times)
    lo, hi = stats["ci95"]
    return {
        "variant": v.name,
        "median_s": stats["median"],
        "ci95_s": [lo, hi],
        "q25_s": float(np.quantile(times, 0.25)),
        "q75_s": float(np.quantile(times, 0.75)),
        unit: work / stats["median"],
        f"{unit}_ci95": [work / hi, work / lo],
        "rounds": len(times),
        "warmup_first_s": v.first_s,
        "compile_s": v.compile_s,
        "times_s": [float(t) for t in times],
    }


def paired(a: Variant, b: Variant, *, speed: bool = True) -> dict[str, Any]:
    """Median over the rounds both ran of time b / time a (the speed of a over b), or with speed=False time a / time b."""
    n = min(len(a.times), len(b.times))
    ta, tb = np.asarray(a.times[:n]), np.asarray(b.times[:n])  # (n,) each
    stats = common.median_ci(tb / ta if speed else ta / tb)
    return {"ratio": f"{a.name}/{b.name}", "paired_median": stats["median"], "ci95": stats["ci95"], "rounds": n}


def target_row(name: str, ratio: dict[str, Any], target: float, *, at_most: bool = False) -> dict[str, Any]:
    value = ratio["paired_median"]
    return {
        "name": name,
        "ratio": ratio["ratio"],
        "value": value,
        "ci95": ratio["ci95"],
        "target": f"{'<=' if at_most else '>='} {target}",
        "pass": bool(value <= target if at_most else value >= target),
    }


def fmt_ci(ci: Sequence[float], digits: int = 2) -> str:
    return f"{ci[0]:.{digits}f}-{ci[1]:.{digits}f}"


def skip_compile(args: argparse.Namespace) -> str | None:
    """Why the torch.compile variants of the transformer and decoding sections are left out, or None."""
    if args.no_compile:
        return "--no-compile"
    if args.quick:
        return "--quick (compiling costs tens of seconds; the families section compiles one family)"
    return None


# ---------------------------------------------------------------- 1. family training steps


def data_folder(args: argparse.Namespace) -> Path | None:
    folder = args.data_dir or os.environ.get("ATTNLAB_DATA", "")
    return Path(folder) if folder else None


def family_config(family: str, sizes: Sizes, args: argparse.Namespace) -> RunConfig:
    """The run config of `family` in the families and seeds sections: its default task and batch, path "fast"."""
    task, batch = FAMILY_TASKS.get(family, SEQUENCE_TASK)
    task_cfg: dict[str, Any] = {"name": task, **sizes.task_overrides.get(task, {})}
    model_cfg: dict[str, Any] = {"name": family}
    if task == "babi":  # benchmarks/babi.py's defaults: bAbI 1k joint, embed_dim 50, memn2n's RN 0.1
        folder = data_folder(args)
        real = sizes.babi_real and folder is not None and (folder / "babi").is_dir()
        task_cfg.update(setting="en" if real else "generated", tasks="all")
        fields = MODELS.build_config(family, {}).__dataclass_fields__
        model_cfg.update({k: v for k, v in (("embed_dim", 50), ("random_noise", 0.1)) if k in fields})
    batch = max(2, round(batch * sizes.batch_scale))
    return resolve({"task": task_cfg, "model": model_cfg, "train": {"batch_size": batch, "path": "fast"}})


class Builder:
    """`build_task_and_model` with each task built once (reading bAbI 1k takes ~20 s) and reused."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}

    def __call__(self, config: RunConfig, seed: int = 0) -> tuple[Task, TaskModel]:
        """The task, and a model initialised right after seed_everything(seed) (the same weights every call)."""
        key = repr(config.to_dict()["task"])
        if key not in self.tasks:
            self.tasks[key] = build_task_and_model(config)[0]
        seed_everything(seed)
        task = self.tasks[key]
        return task, MODELS.get(config.model)(config.model_config, task.spec)


def train_step(model: TaskModel, task: Task, cfg: TrainConfig, seed: int = 0) -> Callable[[], float]:
    """One training step as attnlab.train.loop takes it, on a fresh batch each call; returns the loss."""
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(seed + 1)

    def step() -> float:
        batch = task.sample(cfg.batch_size, gen)
        return float(optimizer_step(model, model, task, batch, opt, cfg.clip_norm, precision=cfg.precision).item())

    return step


def family_names(args: argparse.Namespace, default: Sequence[str]) -> list[str]:
    """`default`, or the families --families names among them (saying which it leaves out)."""
    if args.families == "all":
        return list(default)
    asked = args.families.split(",")
    left_out = [f for f in asked if f not in default]
    if left_out:
        print(f"not in this section: {', '.join(left_out)}", flush=True)
    return [f for f in asked if f in default]


def families_section(args: argparse.Namespace, sizes: Sizes, build: Builder) -> dict[str, Any]:
    """Steps/s of every family on its default task, per path, the paths interleaved within each family."""
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    for i, family in enumerate(family_names(args, MODELS.names())):
        t0, load = time.perf_counter(), os.getloadavg()[0]
        try:
            config = family_config(family, sizes, args)
            task, probe = build(config)
            has_paths = bool(set_path(probe, "fast"))
        except Exception as err:
            print(f"{family:15s} skipped: {one_line(err)}", flush=True)
            rows.append({"family": family, "skipped": one_line(err)})
            continue
        paths = list(PATHS) if has_paths else ["fast"]
        note = "" if has_paths else "no FastPath module: the default path only"
        if "compiled" in paths and (args.no_compile or (args.quick and family != QUICK_COMPILED)):
            paths.remove("compiled")
            note = "compiled left out: " + (
                "--no-compile" if args.no_compile else f"--quick compiles {QUICK_COMPILED} only"
            )
        variants = []
        for path in paths:
            model = probe if path == "fast" else build(config)[1]
            set_path(model, path)
            variants.append(Variant(path, train_step(model, task, config.train), compiles=path == "compiled"))
        fallbacks = set(FALLBACKS)
        block = interleave(variants, args.repeats, args.warmup, seed=i, desc=family, compiles="compiled" in paths)
        base = {"family": family, "task": config.task, "batch": config.train.batch_size, "note": note,
                "parameters": sum(p.numel() for p in probe.parameters())}  # fmt: skip
        rows += [{**base, "variant": v.name, "skipped": v.error} for v in variants if v.error is not None]
        for v in block.ran:
            row = {**base, **timing(v, 1.0, "steps_per_s")}
            if v.name == "compiled":
                row["graphs_compiled_while_timed"] = block.graphs_while_timed
                row["ran_eager_because"] = {k: FALLBACKS[k] for k in set(FALLBACKS) - fallbacks}
            rows.append(row)
        by_name = {v.name: v for v in block.ran}
        ratios += [{"family": family, **paired(by_name[a], by_name["eager"])}
                   for a in ("fast", "compiled") if a in by_name and "eager" in by_name]  # fmt: skip
        if f"family_{family}" in TARGETS and "eager" in by_name:
            best = max((v for v in block.ran if v.name != "eager"), key=lambda v: 1 / np.median(v.times), default=None)
            if best is not None:
                targets.append(target_row(f"{family} {best.name} vs eager", paired(best, by_name["eager"]),
                                          TARGETS[f"family_{family}"]))  # fmt: skip
        shown = ", ".join(f"{v.name} {1 / np.median(v.times):.2f}" for v in block.ran)
        print(f"{family:15s} {config.task:10s} b={config.train.batch_size:3d} steps/s: {shown}  "
              f"({time.perf_counter() - t0:.0f} s, load {load:.1f})", flush=True)  # fmt: skip
    return {"rows": rows, "ratios": ratios, "targets": targets, "compile_seconds": dict(COMPILE_SECONDS)}


def print_families(result: dict[str, Any]) -> None:
    print("\ntraining steps/s per path (median [95% interval]); ratios are paired medians [95% interval]")
    print(f"{'family':<15} {'task':<10} {'batch':>5} {'path':<9} {'ms/step':>9} {'steps/s':>8} {'interval':>13} "
          f"{'compile s':>9} {'first s':>7}  note")  # fmt: skip
    for r in result["rows"]:
        if "skipped" in r:
            print(
                f"{r['family']:<15} {r.get('task', ''):<10} {'':>5} {r.get('variant', ''):<9} skipped: {r['skipped']}"
            )
            continue
        compile_s = f"{r['compile_s']:.1f}" if r["variant"] == "compiled" else ""
        note = r["note"]
        if r.get("graphs_compiled_while_timed"):
            note += f"{r['graphs_compiled_while_timed']} graph(s) compiled during the timed rounds"
        if r.get("ran_eager_because"):
            note += f"ran eager: {'; '.join(r['ran_eager_because'].values())}"
        print(f"{r['family']:<15} {r['task']:<10} {r['batch']:>5} {r['variant']:<9} {r['median_s'] * 1e3:>9.1f} "
              f"{r['steps_per_s']:>8.2f} {fmt_ci(r['steps_per_s_ci95']):>13} {compile_s:>9} {r['warmup_first_s'] or 0:>7.1f}  {note}")  # fmt: skip
    for r in result["ratios"]:
        print(f"{r['family']:<15} {r['ratio']:<16} {r['paired_median']:>6.2f}  [{fmt_ci(r['ci95'])}]")


# ---------------------------------------------------------------- 2. K seeds as one vectorised model


def ram_seed_gemms(config: Any, batch: int, k: int) -> Callable[[], None]:
    """The GEMMs alone of k RAM seeds' training step, each seed's weights its own (one bmm per shape),
    batched over the glimpses wherever no recurrence forbids it: the least work a stacked step does.

    Per seed, forward y = x W (m, i, o) with its backward dW (i, m, o) and dx (m, o, i) where x needs
    a gradient: the glimpse layer (g b, patch, H_g), the location layer (g b, 2, H_g), [h_g; h_l] ->
    g_t (g b, 2 H_g, G), the core's input share (g b, G, C) and, per step after the first, its
    recurrent share (b, C, C); their gradients summed over the steps in one product."""
    g, side, scales = config.num_glimpses, config.glimpse_size, config.num_scales
    hidden, width, core = config.glimpse_hidden, config.glimpse_dim, config.core_size
    m = g * batch
    # (rows, inputs, outputs, whether the input needs a gradient): the patches and locations do not
    layers = [(m, scales * side * side, hidden, False), (m, 2, hidden, False), (m, 2 * hidden, width, True),
              (m, width, core, True)]  # fmt: skip
    gemms = []
    for rows, inner, out, needs_dx in layers:
        gemms += [(rows, inner, out), (inner, rows, out)] + ([(rows, out, inner)] if needs_dx else [])
    gemms += [(batch, core, core), (batch, core, core)] * (g - 1) + [(core, (g - 1) * batch, core)]  # W_hh
    gen = torch.Generator().manual_seed(0)
    operands = [(torch.randn(k, a, b, generator=gen), torch.randn(k, b, c, generator=gen)) for a, b, c in gemms]

    def run() -> None:
        for x, w in operands:
            torch.bmm(x, w)  # (k, a, c)

    return run


def seeds_section(args: argparse.Namespace, sizes: Sizes, build: Builder) -> dict[str, Any]:
    """One SeedStack step of K seeds against one single-seed step of the same family, interleaved."""
    from attnlab.train.vectorised import SeedStack  # imported here: a missing API skips this section only

    k, rows = sizes.seeds, []
    for i, family in enumerate(family_names(args, SEED_FAMILIES)):
        base: dict[str, Any] = {"family": family, "seeds": k}
        try:
            config = family_config(family, sizes, args)
            cfg = config.train
            task, single = build(config)
            set_path(single, "fast")
            models = [build(config, seed=s)[1] for s in range(k)]
            for model in models:
                set_path(model, "fast")
            stack = SeedStack(models, task, cfg)
        except Exception as err:  # a ConfigError names why the family cannot be stacked
            rows.append({**base, "skipped": one_line(err)})
            print(f"{family:10s} K={k}: skipped: {one_line(err)}", flush=True)
            continue
        gens = [torch.Generator().manual_seed(s + 1) for s in range(k)]

        def k_step(stack: Any = stack, gens: list[torch.Generator] = gens, cfg: TrainConfig = cfg,
                   task: Task = task) -> None:  # fmt: skip
            batches = [task.sample(cfg.batch_size, g) for g in gens]
            stack.step(batches, [stack.draw_noise(b.inputs) for b in batches], cfg.lr)

        variants = [Variant(f"{k}_seeds", k_step), Variant("one_seed", train_step(single, task, cfg))]
        if family == "ram":  # the arithmetic floor of the stacked step, against the same single step
            variants.append(Variant(f"{k}_seeds_gemms_only", ram_seed_gemms(single.config, cfg.batch_size, k)))
        block = interleave(variants, args.repeats, args.warmup, seed=100 + i, desc=f"{family} x{k}")
        base.update(task=config.task, batch=cfg.batch_size)
        if len(block.ran) < 2:
            reason = "; ".join(f"{v.name}: {v.error}" for v in variants if v.error)
            rows.append({**base, "skipped": reason})
            continue
        ratio = paired(variants[0], variants[1], speed=False)  # K-step seconds / single-step seconds
        lo, hi = ratio["ci95"]
        if len(variants) > 2 and variants[2] in block.ran:
            floor = paired(variants[2], variants[1], speed=False)  # the K seeds' GEMMs / one whole step
            base["gemm_floor"] = {"k_gemms": timing(variants[2], 1.0, "calls_per_s"), "ratio": floor}
            print(f"{family:10s} K={k}: the K seeds' GEMMs alone / one whole step {floor['paired_median']:.2f} "
                  f"[{fmt_ci(floor['ci95'])}]", flush=True)  # fmt: skip
        rows.append({**base, "k_step": timing(variants[0], 1.0, "steps_per_s"),
                     "one_step": timing(variants[1], 1.0, "steps_per_s"), "ratio": ratio,
                     "speedup_over_k_runs": k / ratio["paired_median"], "speedup_ci95": [k / hi, k / lo],
                     "target": target_row(f"seeds {family}", ratio, TARGETS["seeds"], at_most=True)})  # fmt: skip
        print(f"{family:10s} K={k}: K-step / one step {ratio['paired_median']:.2f} [{fmt_ci(ratio['ci95'])}], "
              f"{k / ratio['paired_median']:.1f}x faster than {k} runs", flush=True)  # fmt: skip
    return {"rows": rows}


def print_seeds(result: dict[str, Any]) -> None:
    print("\nK seeds as one vectorised model: one SeedStack step against one single-seed step (path fast)")
    print(f"{'family':<10} {'K':>3} {'batch':>5} {'K-step ms':>10} {'1-step ms':>10} {'ratio':>6} {'interval':>11} "
          f"{'speed-up':>8} {'target':>8}")  # fmt: skip
    for r in result["rows"]:
        if "skipped" in r:
            print(f"{r['family']:<10} {r['seeds']:>3} skipped: {r['skipped']}")
            continue
        flag = "pass" if r["target"]["pass"] else "miss"
        print(f"{r['family']:<10} {r['seeds']:>3} {r['batch']:>5} {r['k_step']['median_s'] * 1e3:>10.1f} "
              f"{r['one_step']['median_s'] * 1e3:>10.1f} {r['ratio']['paired_median']:>6.2f} "
              f"{fmt_ci(r['ratio']['ci95']):>11} {r['speedup_over_k_runs']:>7.1f}x {flag:>8}")  # fmt: skip


# ---------------------------------------------------------------- 5. bfloat16 autocast


def precision_section(args: argparse.Namespace, sizes: Sizes, build: Builder) -> dict[str, Any]:
    """One training step of each of PRECISION_RUNS with train.precision float32 and bfloat16, interleaved."""
    rows = []
    for i, family in enumerate(family_names(args, tuple(PRECISION_RUNS))):
        task_cfg, model_cfg, batch = PRECISION_RUNS[family]
        batch = max(2, round(batch * sizes.batch_scale))
        config = resolve({"task": task_cfg, "model": {"name": family, **model_cfg},
                          "train": {"batch_size": batch, "path": "fast"}})  # fmt: skip
        task = build(config)[0]
        variants = []
        for precision in ("float32", "bfloat16"):
            model = build(config)[1]  # the same initial weights for both
            set_path(model, "fast")
            variants.append(Variant(precision, train_step(model, task, replace(config.train, precision=precision))))
        block = interleave(variants, args.repeats, args.warmup, seed=200 + i, desc=f"{family} precision")
        base = {"family": family, "task": config.task, "batch": batch}
        if len(block.ran) < 2:
            rows.append({**base, "skipped": "; ".join(f"{v.name}: {v.error}" for v in variants if v.error)})
            continue
        ratio = paired(variants[1], variants[0])  # bfloat16 steps/s / float32 steps/s
        rows.append({**base, "float32": timing(variants[0], 1.0, "steps_per_s"),
                     "bfloat16": timing(variants[1], 1.0, "steps_per_s"), "ratio": ratio})  # fmt: skip
        print(f"{family:10s} b={batch}: bfloat16 / float32 steps/s {ratio['paired_median']:.2f} "
              f"[{fmt_ci(ratio['ci95'])}]", flush=True)  # fmt: skip
    return {"rows": rows}


def print_precision(result: dict[str, Any]) -> None:
    print("\ntraining steps under bfloat16 autocast against float32 (path fast)")
    print(f"{'family':<10} {'task':<12} {'batch':>5} {'fp32 ms':>8} {'bf16 ms':>8} {'speed-up':>8} {'interval':>11}")
    for r in result["rows"]:
        if "skipped" in r:
            print(f"{r['family']:<10} skipped: {r['skipped']}")
            continue
        print(f"{r['family']:<10} {r['task']:<12} {r['batch']:>5} {ratio_cells(r, 'float32', 'bfloat16', 8, 8)}")


def reader_section(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """patch_conv as built against channels-first storage, at DRAM's two reader widths, both precisions."""
    from attnlab.glimpse.retina import PatchConv, patch_conv

    def channels_first(patches: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        x = patches.flatten(1, 2)  # (b, k * c, g, g) as flatten leaves it: channels first
        x = F.relu(F.max_pool2d(F.conv2d(x, w1, b1, padding=1), 2))  # pooling, then ReLU, as patch_conv
        return F.relu(F.max_pool2d(F.conv2d(x, w2, b2, padding=1), 2)).flatten(1)

    batch = max(2, round(128 * sizes.batch_scale))
    rows = []
    for i, (hidden, precision) in enumerate((h, p) for h in (128, 256) for p in ("float32", "bfloat16")):
        torch.manual_seed(0)
        conv = PatchConv(4, 12, hidden)  # 4 scales of 12x12, as on the 100x100 canvases
        patches = torch.rand(batch, 4, 1, 12, 12)  # (b, k, c, g, g)

        def run(read: Callable[..., Tensor], conv: PatchConv = conv, patches: Tensor = patches,
                precision: str = precision) -> None:  # fmt: skip
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                out = read(patches, *conv.weights())
            out.float().sum().backward()

        variants = [Variant("channels_last", lambda run=run: run(patch_conv)),
                    Variant("channels_first", lambda run=run: run(channels_first))]  # fmt: skip
        interleave(variants, args.repeats, args.warmup, seed=300 + i, desc=f"reader {hidden} {precision}")
        ratio = paired(variants[0], variants[1])  # channels-last calls/s / channels-first calls/s
        rows.append({"hidden": hidden, "channels": [hidden // 4, hidden // 2], "precision": precision,
                     "batch": batch, "channels_last": timing(variants[0], 1.0, "calls_per_s"),
                     "channels_first": timing(variants[1], 1.0, "calls_per_s"), "ratio": ratio})  # fmt: skip
    return {"rows": rows}


LAYOUT_HEADER = f"{'precision':<9} {'batch':>5} {'last ms':>8} {'first ms':>9} {'speed-up':>8} {'interval':>11}"


def ratio_cells(r: dict[str, Any], a: str, b: str, width_a: int, width_b: int) -> str:
    """A row's median ms of variants a and b, then the paired speed-up and its interval."""
    return (f"{r[a]['median_s'] * 1e3:>{width_a}.1f} {r[b]['median_s'] * 1e3:>{width_b}.1f} "
            f"{r['ratio']['paired_median']:>8.2f} {fmt_ci(r['ratio']['ci95']):>11}")  # fmt: skip


def layout_cells(r: dict[str, Any]) -> str:
    """The columns of LAYOUT_HEADER for a row of `reader` or `trunk`: channels last against channels first."""
    return f"{r['precision']:<9} {r['batch']:>5} {ratio_cells(r, 'channels_last', 'channels_first', 8, 9)}"


def print_reader(result: dict[str, Any]) -> None:
    print("\nPatchConv forward and backward: input stored channels last (as built) against channels first")
    print(f"{'channels':<10} {LAYOUT_HEADER}")
    for r in result["rows"]:
        print(f"{'/'.join(map(str, r['channels'])):<10} {layout_cells(r)}")


def trunk_section(args: argparse.Namespace, sizes: Sizes, build: Builder) -> dict[str, Any]:
    """A training step of each of TRUNK_RUNS with its ConvTrunk as built (channels last) and with the trunk's
    weights moved to channels first (the canvases have one channel, so then nothing is channels last)."""
    rows = []
    families = family_names(args, tuple(dict.fromkeys(run[0] for run in TRUNK_RUNS)))
    runs = [(*run, p) for run in TRUNK_RUNS if run[0] in families for p in ("float32", "bfloat16")]
    for i, (family, canvases, task_cfg, model_cfg, batch, precision) in enumerate(runs):
        batch = max(2, round(batch * sizes.batch_scale))
        config = resolve({"task": task_cfg, "model": {"name": family, **model_cfg},
                          "train": {"batch_size": batch, "precision": precision}})  # fmt: skip
        task, last = build(config)
        first = build(config)[1]  # the same initial weights
        first.trunk.to(memory_format=torch.contiguous_format)
        variants = [Variant("channels_last", train_step(last, task, config.train)),
                    Variant("channels_first", train_step(first, task, config.train))]  # fmt: skip
        interleave(variants, args.repeats, args.warmup, seed=400 + i, desc=f"trunk {family} {canvases} {precision}")
        ratio = paired(variants[0], variants[1])  # channels-last steps/s / channels-first steps/s
        rows.append({"family": family, "canvases": canvases, "task": config.task, "precision": precision, "batch": batch,
                     "channels_last": timing(variants[0], 1.0, "steps_per_s"),
                     "channels_first": timing(variants[1], 1.0, "steps_per_s"), "ratio": ratio})  # fmt: skip
    return {"rows": rows}


def print_trunk(result: dict[str, Any]) -> None:
    print("\ntraining steps: ConvTrunk channels last (as built) against channels first")
    print(f"{'family':<15} {'canvases':<12} {LAYOUT_HEADER}")
    for r in result["rows"]:
        print(f"{r['family']:<15} {r['canvases']:<12} {layout_cells(r)}")


# ---------------------------------------------------------------- 6. pooling before ReLU


def reader_relu_first(patches: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """patch_conv with each ReLU before its pooling: the same values, ReLU on four times the cells."""
    x = patches.flatten(1, 2).contiguous(memory_format=torch.channels_last)  # (b, k * c, g, g), as patch_conv
    x = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
    return F.max_pool2d(F.relu(F.conv2d(x, w2, b2, padding=1)), 2).flatten(1)


def trunk_relu_first(model: TaskModel) -> TaskModel:
    """model with its ConvTrunk's layers back in the order convolution, ReLU, pooling (built: conv, pool, ReLU)."""
    trunk = cast(nn.Module, model.trunk)
    layers = list(cast(nn.Sequential, trunk.layers))
    trunk.layers = nn.Sequential(*(layers[i + j] for i in range(0, len(layers), 3) for j in (0, 2, 1)))
    return model


def order_section(args: argparse.Namespace, sizes: Sizes, build: Builder) -> dict[str, Any]:
    """patch_conv at DRAM's two reader widths and a training step of TRUNK_RUNS on the sum's canvases, each
    as built (pooling before ReLU) against ReLU first, float32, interleaved."""
    from attnlab.glimpse.retina import PatchConv, patch_conv

    rows = []
    batch = max(2, round(128 * sizes.batch_scale))
    for i, hidden in enumerate((128, 256)):
        torch.manual_seed(0)
        conv = PatchConv(4, 12, hidden)  # 4 scales of 12x12, as on the 100x100 canvases
        patches = torch.rand(batch, 4, 1, 12, 12)  # (b, k, c, g, g)

        def run(read: Callable[..., Tensor], conv: PatchConv = conv, patches: Tensor = patches) -> None:
            read(patches, *conv.weights()).sum().backward()

        variants = [Variant("pool_first", lambda run=run: run(patch_conv)),
                    Variant("relu_first", lambda run=run: run(reader_relu_first))]  # fmt: skip
        rows.append(order_row(variants, args, 500 + i, f"reader {hidden // 4}/{hidden // 2}", batch, "calls_per_s"))
    for i, (family, canvases, task_cfg, model_cfg, b) in enumerate(r for r in TRUNK_RUNS if r[1] == "sum 100x100"):
        b = max(2, round(b * sizes.batch_scale))
        config = resolve({"task": task_cfg, "model": {"name": family, **model_cfg}, "train": {"batch_size": b}})
        task, built = build(config)
        swapped = trunk_relu_first(build(config)[1])  # the same initial weights
        variants = [Variant("pool_first", train_step(built, task, config.train)),
                    Variant("relu_first", train_step(swapped, task, config.train))]  # fmt: skip
        rows.append(order_row(variants, args, 510 + i, f"{family} {canvases}", b, "steps_per_s"))
    return {"rows": rows}


def order_row(variants: list[Variant], args: argparse.Namespace, seed: int, what: str, batch: int,
              unit: str) -> dict[str, Any]:  # fmt: skip
    """Time the two variants interleaved; their timings and the paired speed-up of pooling first."""
    block = interleave(variants, args.repeats, args.warmup, seed=seed, desc=f"order {what}")
    if len(block.ran) < 2:
        return {"what": what, "skipped": "; ".join(f"{v.name}: {v.error}" for v in variants if v.error)}
    return {"what": what, "batch": batch, "pool_first": timing(variants[0], 1.0, unit),
            "relu_first": timing(variants[1], 1.0, unit), "ratio": paired(variants[0], variants[1])}  # fmt: skip


def print_order(result: dict[str, Any]) -> None:
    print("\neach 2x2 max pooling before its ReLU (as built) against ReLU first, float32")
    print(f"{'what':<30} {'batch':>5} {'pool first ms':>13} {'ReLU first ms':>13} {'speed-up':>8} {'interval':>11}")
    for r in result["rows"]:
        if "skipped" in r:
            print(f"{r['what']:<30} skipped: {r['skipped']}")
            continue
        print(f"{r['what']:<30} {r['batch']:>5} {ratio_cells(r, 'pool_first', 'relu_first', 13, 13)}")


# ---------------------------------------------------------------- 3. transformer step against HF BERT


def linear_calls(s: dict[str, int], hf: bool) -> list[tuple[int, int, int]]:
    """(m, k, n) of every nn.Linear call in one forward: m = b * t rows, k inputs, n outputs."""
    m, d, ff = s["b"] * s["t"], s["d"], s["ff"]
    per_layer = [(m, d, d)] * 4 + [(m, d, ff), (m, ff, d)]  # q, k, v, out; the feed-forward
    head = [(m, d, d), (m, d, s["vocab"])] if hf else [(m, d, s["vocab"])]  # HF's head has a d x d transform first
    return per_layer * s["layers"] + head


def step_gemms(calls: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(m, k, n) of each GEMM of forward and backward: y = x W^T, dx = dy W, dW = dy^T x."""
    return [shape for m, k, n in calls for shape in ((m, k, n), (m, n, k), (n, m, k))]


def gemm_flops(gemms: list[tuple[int, int, int]]) -> float:
    return float(sum(2 * m * k * n for m, k, n in gemms))


def gemm_runner(calls: list[tuple[int, int, int]]) -> Callable[[], None]:
    """Runs the GEMMs of one step's linear layers (forward and backward), each on its own tensors."""
    gen = torch.Generator().manual_seed(0)
    operands = []
    for m, k, n in calls:
        x, w, g = (torch.randn(shape, generator=gen) for shape in ((m, k), (n, k), (m, n)))  # (m,k) (n,k) (m,n)
        operands.append((x, w, g))

    def run() -> None:
        for x, w, g in operands:
            F.linear(x, w)  # (m, n)
            g @ w  # (m, k)
            g.t() @ x  # (n, k)

    return run


def ours_bert(s: dict[str, int]) -> nn.Module:
    """attnlab's "transformer" family in BERT's shape: post-norm, GELU, learned positions, a head at every position."""
    from attnlab.models import TransformerConfig
    from attnlab.spec import TaskSpec

    cfg = TransformerConfig(embed_dim=s["d"], num_heads=s["heads"], num_layers=s["layers"], ff_dim=s["ff"],
                            dropout=0.0, activation="gelu", norm_first=False, positions="learned",
                            layer_norm_eps=1e-12)  # fmt: skip
    spec = TaskSpec(seq_len=s["t"], answer_len=s["t"], vocab_size=s["vocab"], num_outputs=s["vocab"])
    model = MODELS.get("transformer")(cfg, spec)
    model.head.linear.weight = model.embed.proj.weight  # tied to the input embedding, as BERT's decoder is
    return model


def hf_bert(s: dict[str, int], attention: str) -> nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=s["vocab"], hidden_size=s["d"], num_hidden_layers=s["layers"],
                     num_attention_heads=s["heads"], intermediate_size=s["ff"], max_position_embeddings=max(512, s["t"]),
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    return BertForMaskedLM._from_config(cfg, attn_implementation=attention)


def mlm_step(model: nn.Module, loss_of: Callable[[nn.Module, Tensor, Tensor], Tensor], x: Tensor, y: Tensor
             ) -> Callable[[], None]:  # fmt: skip
    """forward, cross-entropy at every position, backward, clip to norm 1, AdamW (attnlab's groups)."""
    cfg = TrainConfig()
    opt = make_optimizer(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        model.train()
        loss = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        opt.step()

    return step


def ours_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    logits = model(x)  # (b, t, V)
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


def hf_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return model(input_ids=x, labels=y).loss


def transformer_section(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """Tokens/s and MFU of attnlab's transformer step and HF BERT's, with the GEMM rates, interleaved."""
    s = sizes.bert
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(1, s["vocab"], (s["b"], s["t"]), generator=gen)  # (b, t), no PAD
    y = torch.randint(1, s["vocab"], (s["b"], s["t"]), generator=gen)  # (b, t)
    no_compile = skip_compile(args)
    variants, flops = [], {}
    ours_gemms, hf_gemms = step_gemms(linear_calls(s, hf=False)), step_gemms(linear_calls(s, hf=True))
    for path in ("fast", "compiled"):
        if path == "compiled" and no_compile:
            continue
        torch.manual_seed(0)
        model = ours_bert(s)
        set_path(model, path)
        variants.append(Variant(f"attnlab_{path}", mlm_step(model, ours_loss, x, y), compiles=path == "compiled"))
        flops[f"attnlab_{path}"] = gemm_flops(ours_gemms)
    for attention in ("eager", "sdpa"):
        for compile_it in (False, True):
            if compile_it and no_compile:
                continue
            name = f"hf_{attention}" + ("_compiled" if compile_it else "")
            try:
                torch.manual_seed(0)
                model = hf_bert(s, attention)
            except Exception as err:
                print(f"  {name}: skipped: {one_line(err)}", flush=True)
                continue
            stepped = cast(nn.Module, torch.compile(model)) if compile_it else model
            variants.append(Variant(name, mlm_step(stepped, hf_loss, x, y), compiles=compile_it))
            flops[name] = gemm_flops(hf_gemms)
    variants.append(Variant("gemms", gemm_runner(linear_calls(s, hf=False))))
    big = [torch.randn(2048, 2048, generator=gen) for _ in range(2)]  # (2048, 2048) each
    variants.append(Variant("matmul_2048", lambda: big[0] @ big[1]))
    block = interleave(variants, args.repeats, args.warmup, seed=200, desc="transformer", compiles=not no_compile)
    by_name = {v.name: v for v in block.ran}
    tokens = s["b"] * s["t"]
    references = {"gemms": gemm_flops(ours_gemms), "matmul_2048": 2 * 2048.0**3}  # FLOPs of one call
    rates = {v.name: timing(v, references[v.name], "flop_per_s") for v in block.ran if v.name in references}
    rows = [timing(v, tokens, "tokens_per_s") for v in block.ran if v.name in flops]
    for row in rows:
        name = row["variant"]
        row["step_flops"] = flops[name]
        for key, ref in (("mfu_gemms", "gemms"), ("mfu_matmul_2048", "matmul_2048")):
            if ref in by_name:
                ref_flops = references[ref]  # per round: (flops / step time) / (reference flops / reference time)
                n = min(len(by_name[ref].times), len(by_name[name].times))
                per_round = (flops[name] / np.asarray(by_name[name].times[:n])) / (
                    ref_flops / np.asarray(by_name[ref].times[:n])
                )  # (n,)
                row[key] = common.median_ci(per_round)
    pairs = [("attnlab_fast", "hf_sdpa"), ("attnlab_fast", "hf_eager"), ("attnlab_compiled", "hf_sdpa_compiled"),
             ("attnlab_compiled", "hf_eager_compiled"), ("attnlab_compiled", "attnlab_fast")]  # fmt: skip
    ratios = [paired(by_name[a], by_name[b]) for a, b in pairs if a in by_name and b in by_name]
    targets = []
    ours = [by_name[n] for n in ("attnlab_fast", "attnlab_compiled") if n in by_name]
    best = min(ours, key=lambda v: float(np.median(v.times)), default=None)
    if best is not None and "hf_sdpa" in by_name:
        targets.append(target_row("transformer vs HF sdpa", paired(best, by_name["hf_sdpa"]),
                                  TARGETS["transformer_vs_hf"]))  # fmt: skip
    hf_compiled = [by_name[n] for n in ("hf_sdpa_compiled", "hf_eager_compiled") if n in by_name]
    if "attnlab_compiled" in by_name and hf_compiled:
        fastest = min(hf_compiled, key=lambda v: float(np.median(v.times)))
        targets.append(target_row("transformer compiled vs HF compiled", paired(by_name["attnlab_compiled"], fastest),
                                  TARGETS["transformer_vs_hf_compiled"]))  # fmt: skip
    attention_flops = 3 * 4.0 * s["b"] * s["heads"] * s["t"] ** 2 * (s["d"] // s["heads"]) * s["layers"]
    shapes = {
        "layers": s["layers"], "embed_dim": s["d"], "heads": s["heads"], "ff_dim": s["ff"], "seq_len": s["t"],
        "batch": s["b"], "vocab": s["vocab"], "tokens_per_step": tokens,
        "linear_calls_attnlab": linear_calls(s, hf=False), "linear_calls_hf": linear_calls(s, hf=True),
        "step_gemm_flops_attnlab": gemm_flops(ours_gemms), "step_gemm_flops_hf": gemm_flops(hf_gemms),
        "attention_core_flops_not_counted": attention_flops,
    }  # fmt: skip
    return {"shapes": shapes, "rows": rows, "ratios": ratios, "targets": targets, "rates": rates,
            "compile_left_out": no_compile,
            "graphs_compiled_while_timed": block.graphs_while_timed}  # fmt: skip


def print_transformer(result: dict[str, Any]) -> None:
    sh = result["shapes"]
    print(f"\ntransformer training step, {sh['layers']} layers, d {sh['embed_dim']}, {sh['heads']} heads, "
          f"ff {sh['ff_dim']}, t {sh['seq_len']}, b {sh['batch']}, head over {sh['vocab']} at every position; "
          f"GEMM FLOPs/step attnlab {sh['step_gemm_flops_attnlab'] / 1e9:.1f} G, HF {sh['step_gemm_flops_hf'] / 1e9:.1f} G")  # fmt: skip
    rates = result["rates"]
    for key, label in (("gemms", "of the step's GEMM shapes"), ("matmul_2048", "of a 2048^3 matmul")):
        if key in rates:
            print(f"fp32 matmul rate {label}: {rates[key]['flop_per_s'] / 1e9:.1f} GFLOP/s "
                  f"[{fmt_ci([c / 1e9 for c in rates[key]['flop_per_s_ci95']], 1)}]")  # fmt: skip
    print(
        f"{'variant':<20} {'ms/step':>9} {'tokens/s':>9} {'interval':>13} {'MFU gemms':>10} {'MFU 2048':>9} {'first s':>8}"
    )
    for r in result["rows"]:
        mfu = f"{r['mfu_gemms']['median']:.2f}" if "mfu_gemms" in r else ""
        mfu2 = f"{r['mfu_matmul_2048']['median']:.2f}" if "mfu_matmul_2048" in r else ""
        print(f"{r['variant']:<20} {r['median_s'] * 1e3:>9.1f} {r['tokens_per_s']:>9.0f} "
              f"{fmt_ci(r['tokens_per_s_ci95'], 0):>13} {mfu:>10} {mfu2:>9} {r['warmup_first_s'] or 0:>8.1f}")  # fmt: skip
    for r in result["ratios"]:
        print(f"{r['ratio']:<38} {r['paired_median']:>6.2f}  [{fmt_ci(r['ci95'])}]")


# ---------------------------------------------------------------- 4. greedy decoding against HF GPT-2


def decoding_section(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    """Greedy tokens/s of DecoderLM.generate per path and without a cache, against HF GPT-2, interleaved."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from attnlab.models import DecoderLM, TransformerConfig

    hf_logging.set_verbosity_error()  # generate() warns about unset generation flags
    s, longest = sizes.gpt, max(sizes.new_tokens)
    max_len = s["prompt"] + longest
    cfg = TransformerConfig(embed_dim=s["d"], num_heads=s["heads"], num_layers=s["layers"], ff_dim=4 * s["d"],
                            dropout=0.0, activation="gelu", norm_first=True, positions="learned")  # fmt: skip
    generate_args = inspect.signature(DecoderLM.generate).parameters
    no_compile = skip_compile(args)
    ours: dict[str, nn.Module] = {}
    for path in PATHS:
        torch.manual_seed(0)
        model = DecoderLM(cfg, vocab_size=s["vocab"], max_len=max_len).eval()
        if not set_path(model, path) and path != "fast":
            continue  # DecoderLM without paths: one variant
        if path == "compiled" and no_compile:
            continue
        ours[path] = model
    torch.manual_seed(0)
    eos = s["vocab"] - 1
    hf = GPT2LMHeadModel(GPT2Config(n_layer=s["layers"], n_embd=s["d"], n_head=s["heads"], n_positions=max_len,
                                    vocab_size=s["vocab"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                    bos_token_id=eos, eos_token_id=eos)).eval()  # fmt: skip
    prompt = torch.randint(1, s["vocab"], (1, s["prompt"]), generator=torch.Generator().manual_seed(0))  # (1, p)

    def checked(out: Tensor, n: int) -> Tensor:
        if out.shape != (1, s["prompt"] + n):
            raise RuntimeError(f"generated {tuple(out.shape)}, expected (1, {s['prompt'] + n})")
        return out

    def ours_run(model: nn.Module, n: int, **kw: Any) -> Callable[[], Tensor]:
        return lambda: checked(model.generate(prompt, n, temperature=0, **kw), n)  # type: ignore[operator]

    def hf_run(n: int) -> Callable[[], Tensor]:
        return lambda: checked(hf.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                           pad_token_id=eos), n)  # fmt: skip

    rows, ratios, targets = [], [], []
    blocks = []
    for j, n in enumerate(sizes.new_tokens):
        at_longest = n == longest
        repeats = min(args.repeats, args.long_repeats) if at_longest else args.repeats
        variants = [Variant(f"attnlab_{p}", ours_run(m, n), compiles=p == "compiled") for p, m in ours.items()]
        if "use_cache" in generate_args:
            recompute = ours.get("eager", ours["fast"])
            variants.append(Variant("attnlab_no_cache", ours_run(recompute, n, use_cache=False),
                                    limit=args.recompute_repeats if at_longest else None,
                                    warmup=0 if at_longest and j > 0 else None))  # fmt: skip
        variants.append(Variant("hf", hf_run(n)))
        block = interleave(
            variants, repeats, args.warmup, seed=300 + j, desc=f"decode {n}", compiles="compiled" in ours
        )
        blocks.append(block.graphs_while_timed)
        by_name = {v.name: v for v in block.ran}
        rows += [{"new_tokens": n, **timing(v, n, "tokens_per_s")} for v in block.ran]
        for a, b in [(f"attnlab_{p}", "hf") for p in ours] + [(f"attnlab_{p}", "attnlab_no_cache") for p in ours]:
            if a in by_name and b in by_name:
                ratios.append({"new_tokens": n, **paired(by_name[a], by_name[b])})
        if at_longest:
            headline = next((f"attnlab_{p}" for p in ("compiled", "fast", "eager") if f"attnlab_{p}" in by_name), None)
            for other, key in (("hf", "decoding_vs_hf"), ("attnlab_no_cache", "cache_vs_recompute")):
                if headline is not None and other in by_name:
                    targets.append(target_row(f"{key} at {n}", paired(by_name[headline], by_name[other]), TARGETS[key]))
        shown = ", ".join(f"{v.name} {n / np.median(v.times):.0f}" for v in block.ran)
        print(f"decode {n:5d} new tokens, tokens/s: {shown}", flush=True)
    shapes = {"layers": s["layers"], "embed_dim": s["d"], "heads": s["heads"], "ff_dim": 4 * s["d"],
              "vocab": s["vocab"], "batch": 1, "prompt": s["prompt"], "new_tokens": list(sizes.new_tokens),
              "max_len": max_len, "generate_parameters": list(generate_args)}  # fmt: skip
    return {"shapes": shapes, "rows": rows, "ratios": ratios, "targets": targets, "compile_left_out": no_compile,
            "graphs_compiled_while_timed": blocks}  # fmt: skip


def print_decoding(result: dict[str, Any]) -> None:
    sh = result["shapes"]
    print(f"\ngreedy decoding, batch 1, {sh['prompt']}-token prompt, {sh['layers']} layers, d {sh['embed_dim']}, "
          f"{sh['heads']} heads, vocab {sh['vocab']}")  # fmt: skip
    print(f"{'new tokens':>10} {'variant':<20} {'s/generate':>10} {'tokens/s':>9} {'interval':>13} {'rounds':>6}")
    for r in result["rows"]:
        print(f"{r['new_tokens']:>10} {r['variant']:<20} {r['median_s']:>10.3f} {r['tokens_per_s']:>9.1f} "
              f"{fmt_ci(r['tokens_per_s_ci95'], 1):>13} {r['rounds']:>6}")  # fmt: skip
    for r in result["ratios"]:
        print(f"{r['new_tokens']:>10} {r['ratio']:<38} {r['paired_median']:>7.2f}  [{fmt_ci(r['ci95'])}]")


# ---------------------------------------------------------------- run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    p.add_argument("--families", default="all", help="comma-separated families (default: every registered one)")
    p.add_argument("--repeats", type=int, default=10, help="timed rounds per block (median taken)")
    p.add_argument(
        "--warmup", type=int, default=3, help="untimed calls of each compiled variant first (the others get 1)"
    )
    p.add_argument("--long-repeats", type=int, default=5, help="timed rounds at the longest decoding length")
    p.add_argument("--recompute-repeats", type=int, default=1,
                   help="timed rounds of decoding without a cache at the longest length (minutes each)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    p.add_argument("--data-dir", default="", help="folder holding babi/ and mnist/ (default: env ATTNLAB_DATA)")
    p.add_argument("--no-compile", action="store_true", help="leave out every torch.compile variant")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, 2 rounds, one compiled family")
    p.add_argument("--out", default=None, help="JSON output (default benchmarks/results/speed.json)")
    args = p.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.quick:
        args.repeats, args.warmup, args.long_repeats = min(args.repeats, 2), min(args.warmup, 2), 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir:
        os.environ["ATTNLAB_DATA"] = str(Path(args.data_dir).resolve())  # the tasks read it
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    info = common.machine(argv)
    print(f"torch {info['torch']} ({info['cpu_capability']}), {info['threads']} threads; "
          f"1-min load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    build = Builder()
    runners: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], None]]] = {
        "families": (lambda: families_section(args, sizes, build), print_families),
        "seeds": (lambda: seeds_section(args, sizes, build), print_seeds),
        "transformer": (lambda: transformer_section(args, sizes), print_transformer),
        "decoding": (lambda: decoding_section(args, sizes), print_decoding),
        "precision": (lambda: precision_section(args, sizes, build), print_precision),
        "reader": (lambda: reader_section(args, sizes), print_reader),
        "trunk": (lambda: trunk_section(args, sizes, build), print_trunk),
        "order": (lambda: order_section(args, sizes, build), print_order),
    }
    sections: dict[str, Any] = {}
    for name in args.sections.split(","):
        t0, load = time.perf_counter(), os.getloadavg()[0]
        print(f"\n== {name}", flush=True)
        run, _ = runners[name]
        try:
            sections[name] = run()
        except Exception as err:  # an API this build lacks: the other sections still run
            sections[name] = {"skipped": one_line(err)}
            print(f"{name}: skipped: {one_line(err)}", flush=True)
        sections[name]["seconds"] = time.perf_counter() - t0
        sections[name]["load_average_1min"] = [load, os.getloadavg()[0]]
    for name, result in sections.items():
        if "skipped" not in result:
            runners[name][1](result)
    targets = sections.get("families", {}).get("targets", []) + sections.get("transformer", {}).get("targets", [])
    targets += [r["target"] for r in sections.get("seeds", {}).get("rows", []) if "target" in r]
    targets += sections.get("decoding", {}).get("targets", [])
    if targets:
        print("\ntargets")
        for t in targets:
            print(f"{t['name']:<32} {t['ratio']:<34} {t['value']:>7.2f} [{fmt_ci(t['ci95'])}] {t['target']:>7} "
                  f"{'pass' if t['pass'] else 'miss'}")  # fmt: skip
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.0f} s")
    result = {
        "machine": info,
        "settings": {
            "quick": args.quick,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "long_repeats": args.long_repeats,
            "recompute_repeats": args.recompute_repeats,
            "sizes": asdict(sizes),
            "data_dir": str(data_folder(args) or ""),
            "timing": "every round runs every variant of a block once, in a fresh seeded random order, after "
            "warm-up calls; figures are medians over rounds with a bootstrap 95% interval of the median",
            "ratio": "median of per-round paired ratios (throughput of a / throughput of b unless said), "
            "bootstrap 95% interval",
            "training_step": "task.sample, forward, task loss (+aux), zero_grad, backward, clip_grad_norm_, AdamW",
        },
        "sections": sections,
        "targets": targets,
        "fallbacks": dict(FALLBACKS),
        "elapsed_s": elapsed,
    }
    out = common.write_result(result, "speed-quick.json" if args.quick else "speed.json", args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
