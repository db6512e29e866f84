"""The tour's translation section: attention between two sentences, on the generated language pair.

Trains an RNN encoder-decoder without attention, Bahdanau's and Luong's attention models and a
transformer encoder-decoder on attnlab.data.toy_pair (verb-final, adjectives after the noun,
plural markers, dropped articles), then shows what the issue of attention is about: the alignment
matrices each model learned for one sentence, how far they are from the known word alignments
(alignment error rate), and BLEU against sentence length with and without attention.
"""

from __future__ import annotations

import html
from pathlib import Path

from attnlab.tasks.translation_eval import alignment, alignment_errors, score_split
from attnlab.train import compare, load_run
from attnlab.viz.curves import draw_comparison
from attnlab.viz.translation import draw_alignments

FAMILIES = ("seq2seq", "bahdanau", "luong", "encdec")
LABELS = {"seq2seq": "no attention (GRU)", "bahdanau": "Bahdanau (additive)", "luong": "Luong (general)",
          "encdec": "transformer"}
SENTENCE_INDEX = 3  # the test sentence whose alignments are drawn


def _train_values(quick: bool, seed: int) -> dict:
    if quick:
        return {"steps": "4", "eval_every": "2", "eval_size": "16", "batch_size": "16", "seed": str(seed)}
    return {"steps": "800", "eval_every": "400", "eval_size": "200", "batch_size": "64", "lr": "3e-3",
            "warmup_steps": "100", "seed": str(seed)}


def translation_section(out: Path, *, seed: int, quick: bool) -> dict:
    """Train the four families on the generated pair into out/translation; returns metrics and an html fragment."""
    folder = out / "translation"
    over = {"task": {"corpus": "toy", "toy_pairs": "200" if quick else "20000"},
            "train": _train_values(quick, seed)}
    jobs = compare.plan("translate", list(FAMILIES), 1, over, None)
    rows = compare.run_all(jobs, folder, workers=2, progress=not quick)
    runs = {job["model"]: load_run(folder / "runs" / job["name"]) for job in jobs}
    limit = 50 if quick else None
    scores, errors = {}, {}
    for name, run in runs.items():
        scores[name] = score_split(run.task, run.model, "test", limit=limit)
        if name != "seq2seq":
            errors[name] = alignment_errors(run.task, run.model)
    sentence = runs["bahdanau"].task.split("test").texts[SENTENCE_INDEX][0]
    drawn = {LABELS[name]: alignment(run.task, run.model, sentence) for name, run in runs.items() if name != "seq2seq"}
    draw_alignments(drawn, folder / "alignments.png", title=f"source: {sentence}")
    by_length = [
        {"model": LABELS[name], "setting": b["bin"], "mean": b["bleu"], "min": b["bleu"], "max": b["bleu"]}
        for name, s in scores.items()
        for b in s["bleu_by_length"]
        if b["sentences"] > 0
    ]
    draw_comparison(by_length, metric="test BLEU", x_label="source length (words, bucket's upper edge)",
                    title="BLEU against sentence length", path=folder / "bleu_by_length.png")
    result = {
        "models": {name: {"bleu": scores[name]["bleu"], "chrf": scores[name]["chrf"],
                          "parameters": row["parameters"], "seconds": row["seconds"], "steps": row["step"],
                          "alignment_error_rate": errors.get(name)}
                   for name, row in zip(runs, rows)},
        "sentence": sentence,
        "alignments": "translation/alignments.png",
        "bleu_by_length": "translation/bleu_by_length.png",
    }
    result["html"] = _html(result)
    return result


def _html(result: dict) -> str:
    rows = []
    for name, m in result["models"].items():
        aer = m["alignment_error_rate"]
        cells = "<td>-</td><td>-</td>" if not aer else (
            f"<td>{min(v['argmax'] for v in aer.values()):.1%}</td><td>{min(v['threshold'] for v in aer.values()):.1%}</td>")
        rows.append(f"<tr><td>{html.escape(LABELS[name])}</td><td>{m['parameters']:,}</td><td>{m['bleu']:.1f}</td>"
                    f"<td>{m['chrf']:.1f}</td>{cells}<td>{m['seconds']:.0f} s</td></tr>")
    return f"""<h2>Attention between two sentences: translation</h2>
<p>A generated language pair (<code>attnlab translate</code> corpus <code>toy</code>): the target language puts
the verb last, the adjective after its noun, marks plurals with a word of their own and drops articles, so
the word alignments are known. Each family is trained by the same loop; BLEU is sacreBLEU's on the test
set, greedy decoding. The alignment error rate compares each model's cross-attention (teacher-forced on the
reference, heads averaged, best layer) with the known alignments: the argmax of each row, or every weight
above 0.3.</p>
<table><tr><th>model</th><th>parameters</th><th>BLEU</th><th>chrF</th><th>AER (argmax)</th>
<th>AER (threshold)</th><th>training</th></tr>{''.join(rows)}</table>
<p>What each attention model looks at while writing the translation of
<i>{html.escape(result['sentence'])}</i>:</p>
<img src="{result['alignments']}" alt="alignment matrices">
<p>BLEU against the length of the source sentence: the model without attention must squeeze the whole
sentence into one vector.</p>
<img src="{result['bleu_by_length']}" alt="BLEU against sentence length">
"""
