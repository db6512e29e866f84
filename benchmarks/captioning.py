"""Show, Attend and Tell on Flickr8k: soft attention, hard attention and a decoder without attention.

    python benchmarks/captioning.py --data-dir ../shared/data --run-dir runs/captioning           # all three
    python benchmarks/captioning.py --data-dir ../shared/data --run-dir runs/captioning --variants soft --steps 9400
    python benchmarks/captioning.py --source scenes --steps 300 --variants soft,none               # minutes, no data

docs/captioning.md lists the exact commands behind its figures.

Each variant is the `show_attend_tell` family (attnlab.models.captioning) with `attention` soft,
hard or none (the mean annotation at every step: what attention adds) on the "caption" task
(attnlab.tasks.captioning) over EfficientNet-Lite0's annotation vectors (`--layer`, stride32 unless
told; extracted and cached once: `python -m attnlab.pretrained.image_features --layer stride32`),
trained through attnlab.train (AdamW, warm-up, cosine decay over `--steps`), validated by BLEU-4 of
greedy captions of `--eval-size` validation images every `--eval-every` steps (the learning curve).
Each run has its own folder under `--run-dir`: a finished run is reused and a killed one resumed,
so a long run continues where it stopped. The test images are then captioned with beam search
(`--beam`) by the weights of the best validation BLEU-4 (the paper's early stopping; `--weights
last` for the last step's) and scored against all five references: BLEU-1..4 (coco-caption's
tokenisation and BLEU, lowercased), METEOR 1.5 (its jar; needs Java) and CIDEr-D
(attnlab.tasks.caption_metrics), next to Xu et al. 2015, table 1.

Writes benchmarks/results/captioning-{source}-{layer}.json (configuration, per variant the test
scores, training steps, seconds and the validation curve, machine), the validation curves as
{figures}/captioning-{source}-curves.png, and for each variant that attends the first `--photos`
test images captioned with their per-word attention (attnlab.tasks.caption_eval.looked,
attnlab.viz.captioning) as {figures}/captioning/{source}-{variant}-{k}.jpg (`--figures`, default
docs/figures).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import common
from attnlab.tasks.caption_eval import looked, score_split
from attnlab.train import ensure, load_run, resolve
from attnlab.train.checkpoint import read_metrics
from attnlab.viz.captioning import draw_caption
from attnlab.viz.curves import draw_comparison

# Xu et al. 2015, table 1, Flickr8k (BLEU x100, METEOR x100); ../shared/REFERENCES.md
PAPER = {
    "soft": {"bleu1": 67.0, "bleu2": 44.8, "bleu3": 29.9, "bleu4": 19.5, "meteor": 18.93},
    "hard": {"bleu1": 67.0, "bleu2": 45.7, "bleu3": 31.4, "bleu4": 21.3, "meteor": 20.30},
}
VARIANTS = ("soft", "hard", "none")
SCORES = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "cider")


def run_config(args: argparse.Namespace, variant: str) -> dict:
    """The run config of one variant."""
    task = {"name": "caption", "source": args.source, "layer": args.layer, "data_dir": args.data_dir,
            "finetune": args.finetune}  # fmt: skip
    model = {"name": "show_attend_tell", "attention": variant, "hidden_dim": args.hidden_dim,
             "embed_dim": args.embed_dim, "attn_dim": args.attn_dim, "dropout": args.dropout}  # fmt: skip
    if args.finetune:  # the photographs go in, the family encodes them and trains its encoder too
        model.update(encoder="efficientnet_lite0", encoder_layer=args.layer)
    train = {"steps": args.steps, "eval_every": args.eval_every, "eval_size": args.eval_size,
             "batch_size": args.batch_size, "lr": args.lr, "warmup_steps": args.warmup_steps,
             "clip_norm": args.clip_norm, "seed": args.seed, "device": args.device}  # fmt: skip
    return {"task": task, "model": model, "train": train}


def table(scores: dict[str, dict[str, float]], paper: dict[str, dict[str, float]]) -> str:
    """Ours, one row per variant, each beside the paper's row of that variant in `paper` (where it has one)."""
    head = f"{'variant':<22}" + "".join(f"{s:>9}" for s in SCORES)
    lines = [head, "-" * len(head)]
    for variant, row in scores.items():
        lines.append(f"{'attnlab ' + variant:<22}" + "".join(f"{row.get(s, float('nan')):9.2f}" for s in SCORES))
        if variant in paper:
            row = paper[variant]
            lines.append(f"{'Xu et al. ' + variant:<22}" + "".join(f"{row[s]:9.2f}" if s in row else f"{'':>9}"
                                                                    for s in SCORES))  # fmt: skip
    return "\n".join(lines)


def draw_photos(run: object, source: str, variant: str, count: int, beam: int, figures: Path) -> list[str]:
    """The first `count` test images captioned (beam search) with each word's attention; the files written."""
    task, model = run.task, run.model  # type: ignore[attr-defined]
    images = task.splits["test"].images[:count]
    files = [task.paths[i] for i in images] if source == "flickr8k" else []
    out = figures / "captioning"
    written = []
    if not files:  # generated scenes have no files: save them as PNGs first
        from PIL import Image

        out.mkdir(parents=True, exist_ok=True)
        for k, image in enumerate(images):
            path = out / f"{source}-input-{k}.png"
            Image.fromarray((task.image(image)[0] * 255).byte().numpy()).save(path)
            files.append(path)
    for k, seen in enumerate(looked(task, model, files, beam_size=beam)):
        path = out / f"{source}-{variant}-{k}.jpg"  # photographs: JPEG, a tenth of a PNG
        draw_caption(
            seen.image, seen.words, seen.alphas, task.grid, path, picks=seen.picks, title=f"{variant}: {files[k].name}"
        )
        written.append(str(path))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["flickr8k", "scenes"], default="flickr8k")
    parser.add_argument("--data-dir", default="", help="folder holding flickr8k/ (default: env ATTNLAB_DATA)")
    parser.add_argument("--layer", choices=["stride16", "stride32"], default="stride32",
                        help="annotation vectors: stride32 (7 x 7 x 1280, the default: docs/captioning.md says why) "
                             "or stride16 (14 x 14 x 112)")  # fmt: skip
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: soft, hard, none")
    parser.add_argument("--finetune", action="store_true", help="fine-tune the encoder with the decoder (flickr8k)")
    parser.add_argument(
        "--steps", type=int, default=9400, help="optimizer steps (Flickr8k: 470 a pass over 30k captions)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--clip-norm", type=float, default=5.0)
    parser.add_argument("--eval-every", type=int, default=470)
    parser.add_argument("--eval-size", type=int, default=1000, help="validation images captioned at each evaluation")
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--attn-dim", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--beam", type=int, default=3, help="beam size of the test captions")
    parser.add_argument("--weights", choices=["best", "last"], default="best",
                        help="score the weights of the best validation BLEU-4 (default) or the last step's")  # fmt: skip
    parser.add_argument("--photos", type=int, default=12, help="test images drawn word by word per variant")
    parser.add_argument(
        "--figures", type=Path, default=common.FIGURES, help="folder for the figures (default docs/figures)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/captioning"), help="one folder per variant here")
    parser.add_argument("--out", type=Path, default=None, help="default: in benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown[0]!r} (choose from {', '.join(VARIANTS)})")
    scores, runs = {}, {}
    started = time.perf_counter()
    for variant in variants:
        tuned = "-finetune" if args.finetune else ""
        folder = args.run_dir / f"{args.source}-{args.layer}{tuned}-{variant}-seed{args.seed}"
        result = ensure(resolve(run_config(args, variant)), folder, progress=sys.stderr.isatty())
        run = load_run(folder, args.weights)
        scored = score_split(run.task, run.model, "test", beam_size=args.beam)
        scores[variant] = {k: scored[k] for k in SCORES if k in scored}
        validations = [r for r in read_metrics(folder) if r.get("split") == "val"]
        runs[variant] = {"folder": str(folder), "step": result["step"], "seconds": result["seconds"],
                         "best_val_bleu4": result.get("best_val"), "weights": args.weights,
                         "best_val_step": max(validations, key=lambda r: r.get("bleu4", 0.0), default={}).get("step"),
                         "val_curve": [(r["step"], r.get("bleu4")) for r in validations],
                         "examples": scored["examples"], "images": scored["images"]}  # fmt: skip
        if variant != "none" and args.photos > 0:
            runs[variant]["figures"] = draw_photos(run, args.source, variant, args.photos, args.beam, args.figures)
        print(f"{variant}: {scored['images']} test images, beam {args.beam}: "
              + ", ".join(f"{k} {v:.2f}" for k, v in scores[variant].items())
              + f" ({result['step']} steps, {result['seconds']:.0f} s)", flush=True)  # fmt: skip
    print(table(scores, PAPER if args.source == "flickr8k" else {}))  # the paper's figures are Flickr8k's
    curves = [{"model": v, "setting": step, "mean": value, "min": value, "max": value}
              for v, r in runs.items() for step, value in r["val_curve"] if value is not None]  # fmt: skip
    if curves:
        path = args.figures / f"captioning-{args.source}-curves.png"
        draw_comparison(curves, metric="validation BLEU-4 (greedy)", x_label="step", title="Show, Attend and Tell",
                        path=path)  # fmt: skip
        print(f"wrote {path}")
    record = {
        "benchmark": "captioning",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "scores": scores,
        "runs": runs,
        "paper": PAPER,
        "wall_seconds": time.perf_counter() - started,
        "machine": common.machine(argv),
    }
    tuned = "-finetune" if args.finetune else ""
    out = common.write_result(record, f"captioning-{args.source}-{args.layer}{tuned}.json", args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
