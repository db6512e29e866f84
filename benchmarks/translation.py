"""Translation quality of the encoder-decoder families, trained through attnlab.train.

    # Multi30k test2016 (needs ATTNLAB_DATA or --data-dir): one family, one direction
    python benchmarks/translation.py multi30k --model encdec --source de --target en --steps 3000 \\
        --model.embed_dim=256 --model.num_layers=3 --model.num_heads=8 --model.ff_dim=512 --model.dropout=0.1
    python benchmarks/translation.py multi30k --model bahdanau --source de --target en --steps 1500 --beam 1
    # ... --average 3: keep the last 3 evaluations' weights and score their mean too
    # the generated pair (no data): BLEU by length and alignment error rate of every family
    python benchmarks/translation.py toy --steps 1500

`multi30k` trains `--model` on task "translate" (corpus multi30k) into `--out` (resuming the run
there if one was started), then decodes test2016 greedily and, with `--beam K`, with beam search,
and, with `--average N`, the mean of the weights of its last N evaluations (checkpoint averaging;
the run keeps them: train.keep_checkpoints), scored on validation beside the last weights so the
choice is made there, and on test),
and prints BLEU (sacrebleu, detokenised and cased), chrF and the lowercased tokenised BLEU that
the published Multi30k tables use, next to the published figure for that family and direction
(../shared/REFERENCES.md), with BLEU by source length, the learning curve (validation BLEU
against training time), the parameter count and the wall-clock time on this machine.

`toy` trains seq2seq (no attention), bahdanau, luong (dot and general) and encdec on the
generated language pair, and scores test BLEU by source length and the alignment error rate of
each family's cross-attention against the pair's known word alignments.

`figures` draws docs/figures/translation-*.png from those results (and the toy runs' folders):
validation BLEU against training time, BLEU against source length, and the toy alignment matrices.

Results go to benchmarks/results/translation-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

import common
from attnlab.config import parse_overrides
from attnlab.tasks.translation_eval import alignment_errors, score_split
from attnlab.train import checkpoint, ensure, load_run, resolve
from common import FIGURES, RESULTS

# Published test2016 BLEU (lowercased tokenised corpus BLEU), from ../shared/REFERENCES.md.
PUBLISHED = {
    ("seq2seq", "de", "en"): (13.76, "LSTM seq2seq without attention, greedy (bentrevett/pytorch-seq2seq 1)"),
    ("bahdanau", "de", "en"): (28.30, "Bahdanau attention GRU, greedy (bentrevett/pytorch-seq2seq 3)"),
    ("encdec", "de", "en"): (36.52, "small Transformer 3+3, d 256, greedy (bentrevett/pytorch-seq2seq legacy 6)"),
    ("encdec", "en", "de"): (41.02, "Transformer-tiny 4+4, d 128, beam 5, checkpoint average (Revisit-MMT)"),
    ("bahdanau", "en", "de"): (37.33, "attention GRU 100-d, beam 12 (LIUM nmtpy)"),
}

TOY_MODELS = {  # name in the results -> (family, model overrides)
    "seq2seq": ("seq2seq", {}),
    "bahdanau": ("bahdanau", {}),
    "luong-dot": ("luong", {"method": "dot"}),
    "luong-general": ("luong", {"method": "general"}),
    "encdec": ("encdec", {"num_layers": 2}),
}


def curve(folder: Path) -> list[dict]:
    """Validation BLEU against training time, from the run's metrics.jsonl."""
    return [
        {"step": r["step"], "seconds": r["seconds"], "bleu": r["bleu"], "train_loss": r["train_loss"]}
        for r in checkpoint.read_metrics(folder)
        if r.get("split") == "val"
    ]


def train_run(config: dict, folder: Path) -> None:
    """Train into folder (attnlab.train.ensure: a finished run is reused, a killed one resumed)."""
    ensure(resolve(config), folder, progress=sys.stderr.isatty())


def train_section(args, overrides: dict, **fixed) -> dict:
    """train.* from the command line, then the fixed settings given, then the --train.* overrides."""
    return {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_steps": args.warmup,
        "eval_every": args.eval_every,
        "eval_size": 300,
        **fixed,
        **overrides.get("train", {}),
    }


def multi30k(args, overrides: dict) -> dict:
    config = {
        "task": {
            "name": "translate",
            "corpus": "multi30k",
            "source": args.source,
            "target": args.target,
            "vocab_size": args.vocab_size,
            **overrides.get("task", {}),
        },
        "model": {"name": args.model, **overrides.get("model", {})},
        "train": train_section(args, overrides, clip_norm=1.0),
    }
    if args.average > 1:
        config["train"]["keep_checkpoints"] = max(args.average, config["train"].get("keep_checkpoints", 0))
    folder = args.out or Path("runs") / f"mt-{args.model}-{args.source}-{args.target}"
    train_run(config, folder)
    run = load_run(folder)
    decoders = {"greedy": 1, **({f"beam{args.beam}": args.beam} if args.beam > 1 else {})}
    scores = {name: score_split(run.task, run.model, "test", beam_size=k) for name, k in decoders.items()}
    averaged = None
    if args.average > 1:
        val = {"last": score_split(run.task, run.model, "val")["tokenized_bleu"]}
        steps = checkpoint.average_checkpoints(folder, run.model, args.average)
        run.model.eval()
        val[f"avg{args.average}"] = score_split(run.task, run.model, "val")["tokenized_bleu"]
        scores |= {
            f"{name}-avg{args.average}": score_split(run.task, run.model, "test", beam_size=k)
            for name, k in decoders.items()
        }
        averaged = {"steps": steps, "val_tokenized_bleu_greedy": val}
    rows = curve(folder)
    published = PUBLISHED.get((args.model, args.source, args.target))
    meta = common.machine()
    return {
        "benchmark": "translation-multi30k",
        "date": meta["date"],
        "config": run.config.to_dict(),
        "folder": str(folder),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "train_seconds": rows[-1]["seconds"] if rows else None,
        "steps": rows[-1]["step"] if rows else None,
        "scores": scores,
        "averaged": averaged,
        "curve": rows,
        "published": {
            "bleu": published[0],
            "what": published[1],
            "scored_as": "lowercased tokenised corpus BLEU-4 (compare with tokenized_bleu)",
        }
        if published
        else None,
        "machine": meta,
    }


def toy(args, overrides: dict) -> dict:
    results = {}
    for name, (family, model_overrides) in TOY_MODELS.items():
        folder = (args.out or Path("runs") / "mt-toy") / name
        config = {
            "task": {"name": "translate", "corpus": "toy", **overrides.get("task", {})},
            "model": {"name": family, **model_overrides, **overrides.get("model", {})},
            "train": train_section(args, overrides),
        }
        train_run(config, folder)
        run = load_run(folder)
        entry = {
            "family": family,
            "parameters": sum(p.numel() for p in run.model.parameters()),
            "train_seconds": curve(folder)[-1]["seconds"],
            "test": score_split(run.task, run.model, "test"),
        }
        if family != "seq2seq":
            entry["alignment_error_rate"] = alignment_errors(run.task, run.model)
        results[name] = entry
        print(f"{name:>14}: BLEU {entry['test']['bleu']:.2f}  AER {entry.get('alignment_error_rate')}", flush=True)
    meta = common.machine()
    return {
        "benchmark": "translation-toy",
        "date": meta["date"],
        "steps": args.steps,
        "models": results,
        "machine": meta,
    }


def figures(args) -> None:
    """Learning curves, BLEU by length and alignment matrices from the saved results."""
    from attnlab.tasks.translation_eval import alignment
    from attnlab.viz.curves import draw_comparison
    from attnlab.viz.translation import draw_alignments

    out = FIGURES
    curves, by_length = [], []
    for path in sorted(RESULTS.glob("translation-multi30k-*.json")):
        result = json.loads(path.read_text())
        label = path.stem.removeprefix("translation-multi30k-")  # family-source-target[-label]
        curves += [
            {"model": label, "setting": r["seconds"] / 60, "mean": r["bleu"], "min": r["bleu"], "max": r["bleu"]}
            for r in result["curve"]
        ]
        by_length += [
            {
                "model": label,
                "setting": float(b["bin"].lstrip(">")),
                "mean": b["bleu"],
                "min": b["bleu"],
                "max": b["bleu"],
            }
            for b in result["scores"]["greedy"]["bleu_by_length"]
            if b["sentences"]
        ]
    if curves:
        draw_comparison(
            curves,
            metric="validation BLEU (greedy, 300 sentences)",
            x_label="training minutes (2 cores)",
            title="Multi30k: learning curves",
            path=out / "translation-multi30k-curves.png",
        )
        draw_comparison(
            by_length,
            metric="test2016 BLEU (greedy)",
            x_label="source length, words (bucket's upper edge)",
            title="Multi30k: BLEU against sentence length",
            path=out / "translation-multi30k-by-length.png",
        )
    toy_path = RESULTS / "translation-toy.json"
    if toy_path.exists():
        result = json.loads(toy_path.read_text())
        rows = [
            {
                "model": name,
                "setting": float(b["bin"].lstrip(">")),
                "mean": b["bleu"],
                "min": b["bleu"],
                "max": b["bleu"],
            }
            for name, entry in result["models"].items()
            for b in entry["test"]["bleu_by_length"]
            if b["sentences"]
        ]
        draw_comparison(
            rows,
            metric="test BLEU (greedy)",
            x_label="source length, words (bucket's upper edge)",
            title="Generated pair: BLEU against sentence length",
            path=out / "translation-toy-by-length.png",
        )
        folders = {name: (args.out or Path("runs") / "mt-toy") / name for name in result["models"] if name != "seq2seq"}
        missing = [str(f) for f in folders.values() if not f.is_dir()]
        if missing:
            print(f"toy alignments not drawn: no run folder {missing[0]} (train them with `toy`, or give --out)")
            print(f"wrote figures under {out}")
            return
        runs = {name: load_run(folder) for name, folder in folders.items()}
        sentence = next(iter(runs.values())).task.split("test").texts[args.sentence][0]
        drawn = {name: alignment(run.task, run.model, sentence) for name, run in runs.items()}
        draw_alignments(drawn, out / "translation-toy-alignments.png", title=f"source: {sentence}")
    print(f"wrote figures under {out}")


def report(result: dict) -> str:
    lines = []
    if result["benchmark"] == "translation-multi30k":
        task = result["config"]["task"]
        lines.append(
            f"{result['config']['model']['name']} {task['source']}->{task['target']}: "
            f"{result['parameters'] / 1e6:.1f}M parameters, {result['steps']} steps, "
            f"{result['train_seconds'] / 60:.1f} min"
        )
        for name, s in result["scores"].items():
            lines.append(
                f"  test2016 {name}: BLEU {s['bleu']:.2f} (sacrebleu, cased, detokenised), "
                f"tokenised lowercased BLEU {s['tokenized_bleu']:.2f}, chrF {s['chrf']:.2f}"
            )
        if result.get("averaged"):
            avg = result["averaged"]
            lines.append(
                f"  averaged steps {avg['steps']}: validation greedy tokenised BLEU "
                + ", ".join(f"{k} {v:.2f}" for k, v in avg["val_tokenized_bleu_greedy"].items())
            )
        if result["published"]:
            lines.append(f"  published: {result['published']['bleu']} ({result['published']['what']})")
        first = next(iter(result["scores"].values()))
        lines.append(
            "  BLEU by source length: "
            + ", ".join(f"{b['bin']}: {b['bleu']:.1f} ({b['sentences']})" for b in first["bleu_by_length"])
        )
    else:
        for name, entry in result["models"].items():
            aer = entry.get("alignment_error_rate")
            best = min(v["argmax"] for v in aer.values()) if aer else None
            lines.append(
                f"{name:>14}: test BLEU {entry['test']['bleu']:.2f}, best argmax AER "
                f"{'-' if best is None else f'{best:.3f}'}, {entry['parameters']} parameters"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=["multi30k", "toy", "figures"])
    parser.add_argument("--model", default="encdec", help="multi30k: the family")
    parser.add_argument("--source", default="de")
    parser.add_argument("--target", default="en")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--beam", type=int, default=1, help="also score beam search of this width")
    parser.add_argument(
        "--average",
        type=int,
        default=0,
        help="multi30k: also score the mean of the last N evaluations' weights (N > 1)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, help="run folder (toy: the parent of one folder per family)")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--label", default="", help="multi30k: appended to the results file's name")
    parser.add_argument("--sentence", type=int, default=3, help="figures: the toy test sentence drawn")
    args, extra = parser.parse_known_args(argv)
    overrides = parse_overrides(extra)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir:
        os.environ["ATTNLAB_DATA"] = str(args.data_dir)
    if args.corpus == "figures":
        figures(args)
        return 0
    result = multi30k(args, overrides) if args.corpus == "multi30k" else toy(args, overrides)
    print(report(result))
    if args.corpus == "multi30k":
        name = f"translation-multi30k-{args.model}-{args.source}-{args.target}{args.label and '-' + args.label}.json"
    else:
        name = "translation-toy.json"
    print(f"wrote {common.write_result(result, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
