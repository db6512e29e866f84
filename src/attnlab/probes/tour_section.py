"""The tour's section on a real pretrained transformer: a pronoun and ambiguous words.

"The animal didn't cross the street because it was too tired" / "... too wide" is the example
with which the Transformer was introduced to a wide audience (Uszkoreit 2017, Google AI blog):
"it" means the animal in one sentence and the street in the other. The head shown is the one
the Winograd-template probe (attnlab.probes.pronouns, after Clark et al. 2019) ranks first on its
selection split, so the choice never looks at these two sentences. The word-sense picture is
attnlab.probes.senses (Wiedemann et al. 2019's nearest-neighbour view of contextual vectors).
The last part trains attnlab's own small encoder on generated twins (attnlab.probes.own_encoder)
and shows the head whose attention from the query best picks the antecedent. Drawing is
attnlab.viz.probes.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from attnlab.pretrained import load_encoder
from attnlab.probes import own_encoder, pronouns, senses
from attnlab.viz.probes import draw_token_bars

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TWINS = (
    "The animal didn't cross the street because it was too tired.",
    "The animal didn't cross the street because it was too wide.",
)
CANDIDATES = ("animal", "street")  # the referent in TWINS[0], then in TWINS[1]


def pronoun_rows(encoder, layer: int, head: int) -> list[tuple[list[str], torch.Tensor, dict[str, float]]]:
    """For each twin: its tokens, one head's attention from "it" (t,), and the weight on each candidate."""
    attn, batch = encoder.attentions(list(TWINS))  # (L, 2, h, t, t)
    out = []
    for n, text in enumerate(TWINS):
        offsets = batch.offsets[n]
        it = pronouns.token_indices(offsets, _span(text, " it ", 1))
        row = attn[layer, n, head, it].mean(0)  # (t,)
        weights = {c: float(row[pronouns.token_indices(offsets, _span(text, c))].sum()) for c in CANDIDATES}
        out.append((batch.tokens[n][: int(batch.mask[n].sum())], row[: int(batch.mask[n].sum())], weights))
    return out


def draw_pronoun_rows(rows, layer: int, head: int, path: Path) -> Figure:
    """One bar chart per twin: the chosen head's attention from "it" to every token (attnlab.viz.probes)."""
    return draw_token_bars(
        [(tokens, row) for tokens, row, _ in rows],
        titles=list(TWINS),
        highlight=[[k for k, t in enumerate(tokens) if t in CANDIDATES] for tokens, _, _ in rows],
        ylabel='weight from "it"',
        title=f"layer {layer} head {head} (chosen on generated Winograd pairs); candidates in orange",
        path=path,
    )


def own_encoder_part(out: Path, *, steps: int, seed: int) -> dict:
    """Train attnlab's own small encoder on the generated pronoun task (attnlab.probes.own_encoder) and draw
    its best query head on one held-out twin pair; a finished run in out/own_encoder is reused."""
    run, summary = own_encoder.train_run(out / "own_encoder", train_settings={"steps": steps, "seed": seed})
    probe = own_encoder.probe_run(run.task, run.model)
    layer, head = probe["from_query"]["best_head"]
    rows = own_encoder.twin_rows(run.task, run.model, layer=layer, head=head, kind="query")
    own_encoder.draw_twins(rows, layer=layer, head=head, kind="query", path=out / "own_pronoun.png")
    keep = ("best_head", "eval_accuracy", "eval_n", "per_layer_eval_accuracy")
    return {
        "steps": summary["step"],
        "train_seconds": summary["seconds"],
        "parameters": summary["parameters"],
        "layers": len(probe["from_query"]["per_layer_best_head"]),
        "heldout_accuracy": probe["heldout_accuracy"],
        "twin_pairs_both_right": probe["twin_pairs_both_right"],
        "baselines": probe["baselines"],
        "from_query": {k: probe["from_query"][k] for k in keep},
        "from_pronoun": {k: probe["from_pronoun"][k] for k in keep},
    }


def pretrained_section(
    out: Path, *, encoder=None, schemas: int = 24, seed: int = 0, own_steps: int = 800, src_prefix: str = ""
) -> dict:
    """Run the pronoun and word-sense probes on the packaged MiniLM and draw them into `out`.

    `schemas` (per template) and `seed` default to benchmarks/probes.py's, so the head chosen here
    is the one docs/pretrained.md reports. `own_steps` > 0 also trains attnlab's own 3-layer encoder
    on the generated pronoun task for that many steps (about 35 s at 800 on one CPU thread; 0 skips
    it). Returns metrics, the figure file names (relative to `out`) and "html", a fragment for the
    tour report whose image paths are `src_prefix` + the file name (by default relative to `out`,
    for a report written beside the figures, as the tour does).
    """
    start = time.perf_counter()
    out = Path(out)
    encoder = load_encoder() if encoder is None else encoder
    examples = pronouns.generate_pairs(schemas_per_template=schemas, seed=seed)
    selection, heldout = pronouns.split_by_group(examples, seed=seed)
    result = pronouns.probe(
        pronouns.score_examples(encoder, selection),
        pronouns.labels_of(selection),
        pronouns.score_examples(encoder, heldout),
        pronouns.labels_of(heldout),
    )
    layer, head = result["best_head"]
    rows = pronoun_rows(encoder, layer, head)
    draw_pronoun_rows(rows, layer, head, out / "pretrained_pronoun.png")
    twins = {
        word: {"weights": w, "picks": max(w, key=w.get), "right": max(w, key=w.get) == truth}
        for word, truth, (_, _, w) in zip(("tired", "wide"), CANDIDATES, rows)
    }

    examples = senses.sense_examples()
    vectors, bags = senses.word_vectors(encoder, examples)  # (L + 1, n, d), (n, d)
    sep = senses.separation(vectors, examples)
    bag = senses.separation(bags, examples)
    last = vectors.shape[0] - 1
    senses.draw_senses(vectors, examples, layers=[0, last], path=out / "pretrained_senses.png")
    metrics = {
        "model": encoder.path.name if encoder.path.name != "model" else encoder.path.parent.name,
        "pronoun_probe": {
            k: result[k] for k in ("best_head", "selection_accuracy", "eval_accuracy", "eval_n", "eval_p_value")
        },
        "twins": twins,
        "senses": {
            "nn": sep["nn"],
            "two_means": sep["two_means"],
            "bag_nn": bag["nn"][0],
            "bag_two_means": bag["two_means"][0],
        },
        "figures": ["pretrained_pronoun.png", "pretrained_senses.png"],
    }
    if own_steps > 0:
        metrics["own_encoder"] = own_encoder_part(out, steps=own_steps, seed=seed)
        metrics["figures"].append("own_pronoun.png")
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    metrics["html"] = _html(metrics, prefix=src_prefix)
    return metrics


def _html(m: dict, prefix: str = "") -> str:
    p, s, t = m["pronoun_probe"], m["senses"], m["twins"]
    layer, head = p["best_head"]
    picks = "; ".join(
        f"&ldquo;too {w}&rdquo;: it &rarr; {html.escape(t[w]['picks'])} ({'right' if t[w]['right'] else 'wrong'})"
        for w in ("tired", "wide")
    )
    return (
        "<section id='pretrained'><h2>Self-attention on real language (all-MiniLM-L6-v2)</h2>\n"
        "<p>A pretrained 6-layer BERT-family encoder, rebuilt from attnlab's own layers. "
        f"Head {layer}-{head} is the one whose attention from a pronoun best picks its antecedent on generated "
        "Winograd twins "
        f"({p['selection_accuracy']:.0%} on the selection split, {p['eval_accuracy']:.0%} on {p['eval_n']} held-out "
        f"sentences; chance is 50%, one-sided p = {p['eval_p_value']:.2g}). On the twins below it says {picks}.</p>\n"
        f'<img src="{html.escape(prefix)}pretrained_pronoun.png" alt="attention from it in the two twin sentences">\n'
        "<p>Word senses: the same word (bank, bat, match, plant, spring) enters as one vector; after the layers, "
        f"the nearest other occurrence has the same sense {s['nn'][-1]:.0%} of the time (input embeddings: "
        f"{s['nn'][0]:.0%}; a bag of the sentence's input vectors: {s['bag_nn']:.0%}).</p>\n"
        f'<img src="{html.escape(prefix)}pretrained_senses.png" '
        'alt="2-D projections of one word in two senses, input vs last layer">\n'
        + (_own_html(m["own_encoder"], prefix) if "own_encoder" in m else "")
        + "</section>"
    )


def _own_html(o: dict, prefix: str) -> str:
    q, pr, b = o["from_query"], o["from_pronoun"], o["baselines"]
    (ql, qh), (pl, ph) = q["best_head"], pr["best_head"]
    return (
        "<h3>Our own small encoder, trained on generated twins</h3>\n"
        f"<p>attnlab's {o['layers']}-layer transformer ({o['parameters']:,} parameters), trained from scratch for "
        f"{o['steps']} steps ({o['train_seconds']:.0f} s) to name the antecedent of &ldquo;it&rdquo; in generated "
        "Winograd twins (task <code>pronouns</code>), answers "
        f"{o['heldout_accuracy']:.0%} of sentences over held-out noun pairs right (both twins right: "
        f"{o['twin_pairs_both_right']:.0%}); always the first candidate scores {b['first_candidate']:.0%} and the "
        f"switch word alone {b['switch_word_alone']:.0%}. From the query position, head {ql}-{qh} puts more weight "
        f"on the antecedent than on the other candidate in {q['eval_accuracy']:.0%} of {q['eval_n']} held-out "
        f"sentences; from the pronoun itself the best head ({pl}-{ph}) manages {pr['eval_accuracy']:.0%}. Layer 0 "
        "cannot beat 50%: it has not yet mixed in the switch word.</p>\n"
        f'<img src="{html.escape(prefix)}own_pronoun.png" alt="the own encoder\'s best head on one twin pair">\n'
    )


def _span(text: str, needle: str, trim: int = 0) -> tuple[int, int]:
    start = text.index(needle) + trim
    return start, start + len(needle) - 2 * trim
