"""Our own small encoder on a generated pronoun task: accuracy, and where its attention points.

    python benchmarks/own_pronouns.py                  # about 1 min on one CPU thread
    python benchmarks/own_pronouns.py --steps 3000 --run-dir runs/own_pronouns

Trains attnlab's "transformer" family (3 layers, 4 heads, d = 64) from scratch through
attnlab.train on the "pronouns" task (attnlab.tasks.pronouns: Winograd-style twins, answer read
at a query token after the sentence; val and test use noun pairs never trained on), then runs the
attention probe of attnlab.probes.own_encoder (Clark et al. 2019's antecedent picker, as for the
pretrained MiniLM in benchmarks/probes.py): per layer and head, how often the attention from the
pronoun and from the query puts more weight on the true antecedent than on the other candidate;
heads are chosen on the val twins and scored on the test twins.

Writes benchmarks/results/own_pronouns.json and docs/figures/own_pronoun_{twins,heads}.png
(docs/pretrained.md, section 4, shows them). Every number in that section comes from the JSON.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

import common
from attnlab.probes import own_encoder
from attnlab.viz.probes import draw_head_grids


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=own_encoder.TRAIN["steps"], help="training steps")
    parser.add_argument("--layers", type=int, default=own_encoder.MODEL["num_layers"], help="encoder layers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=512, help="sentences in each of the selection and evaluation sets")
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/own_pronouns.json")
    parser.add_argument("--figures", type=Path, default=common.FIGURES)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: fastest on 2 shared cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.run_dir if args.run_dir is not None else Path(tmp) / "run"
        overrides = {"model": {"num_layers": args.layers}, "train_settings": {"steps": args.steps, "seed": args.seed}}
        run, summary = own_encoder.train_run(folder, **overrides)
        probe = own_encoder.probe_run(run.task, run.model, size=args.size)
        args.figures.mkdir(parents=True, exist_ok=True)
        layer, head = probe["from_query"]["best_head"]
        rows = own_encoder.twin_rows(run.task, run.model, layer=layer, head=head, kind="query")
        own_encoder.draw_twins(rows, layer=layer, head=head, kind="query", path=args.figures / "own_pronoun_twins.png")
        draw_head_grids(
            {
                "from the query, held-out twins": probe["from_query"]["eval_grid"],
                "from the pronoun, held-out twins": probe["from_pronoun"]["eval_grid"],
            },
            vmin=0.0,
            vmax=1.0,
            label="antecedent > other candidate (chance 0.5)",
            path=args.figures / "own_pronoun_heads.png",
        )
        twins = [
            {
                "sentence": " ".join(r["tokens"][:-1]),
                "answer": r["tokens"][r["answer"]],
                "predicted": r["predicted"],
                "weights": {r["tokens"][c]: float(r["weights"][c]) for c in r["candidates"]},
            }
            for r in rows
        ]
        config = run.config.to_dict()
    meta = common.machine(argv, load_average=os.getloadavg())
    report = {
        "command": meta["command"],
        "date": meta["date"],
        "machine": meta,
        "config": config,
        "train": summary,
        **probe,
        "twins_figure": {"layer": layer, "head": head, "kind": "query", "rows": twins},
        "figures": ["own_pronoun_twins.png", "own_pronoun_heads.png"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    out = common.write_result(report, "own_pronouns.json", args.out)
    print(
        f"held-out accuracy {probe['heldout_accuracy']:.3f} (both twins right {probe['twin_pairs_both_right']:.3f}); "
        f"baselines {probe['baselines']}"
    )
    for kind in own_encoder.ROWS:
        p = probe[f"from_{kind}"]
        print(
            f"from the {kind}: best head {p['best_head']} held-out {p['eval_accuracy']:.3f}; per layer "
            f"{[round(x, 3) for x in p['per_layer_eval_accuracy']]}"
        )
    print(f"trained in {summary['seconds']} s; wrote {out} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
