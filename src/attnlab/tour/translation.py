"""The tour's translation section: attention between two sentences, on the generated language pair.

Trains an RNN encoder-decoder without attention, Bahdanau's and Luong's attention models and a
transformer encoder-decoder on attnlab.data.toy_pair (verb-final, adjectives after the noun,
plural markers, dropped articles), then shows the alignment matrices each model learned for one
sentence, how far they are from the known word alignments (alignment error rate), and BLEU
against sentence length with and without attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.errors import ConfigError
from attnlab.tasks.translation import TranslationTask
from attnlab.tasks.translation_eval import alignment, alignment_errors, score_split
from attnlab.tour import report
from attnlab.tour.budget import Budget
from attnlab.train import Run, compare, load_run
from attnlab.viz.curves import draw_comparison
from attnlab.viz.translation import draw_alignments

NAME = "translation"
TITLE = "Attention between two sentences: translation"
FAMILIES = ("seq2seq", "bahdanau", "luong", "encdec")
LABELS = {
    "seq2seq": "no attention (GRU)",
    "bahdanau": "Bahdanau (additive)",
    "luong": "Luong (general)",
    "encdec": "transformer",
}
SENTENCE_INDEX = 3  # the test sentence whose alignments are drawn


def _task(trained: Run) -> TranslationTask:
    if not isinstance(trained.task, TranslationTask):
        raise ConfigError(f"task: the section scores translations, not {trained.config.task!r}")
    return trained.task


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train the four families on the generated pair into out/translation, score and draw them.

    Returns:
        models (family -> bleu, chrf, parameters, seconds, steps, alignment_error_rate or None),
        sentence (the one drawn), alignments and bleu_by_length (figure paths relative to out).
    """
    folder = out / NAME
    spent = budget.translation
    over = {"task": {"corpus": "toy", "toy_pairs": spent.pairs}, "train": spent.train.overrides(seed)}
    jobs = compare.plan("translate", list(FAMILIES), 1, over, None)
    rows = compare.run_all(jobs, folder, workers=2, progress=budget.progress)
    runs = {job["model"]: load_run(folder / "runs" / job["name"]) for job in jobs}
    tasks = {name: _task(trained) for name, trained in runs.items()}
    scores, errors = {}, {}
    for name, trained in runs.items():
        scores[name] = score_split(tasks[name], trained.model, "test", limit=spent.scored)
        if name != "seq2seq":
            errors[name] = alignment_errors(tasks[name], trained.model)
    sentence = tasks["bahdanau"].split("test").texts[SENTENCE_INDEX][0]
    drawn = {LABELS[name]: alignment(tasks[name], r.model, sentence) for name, r in runs.items() if name != "seq2seq"}
    draw_alignments(drawn, folder / "alignments.png", title=f"source: {sentence}")
    by_length = [
        {"model": LABELS[name], "setting": b["bin"], "mean": b["bleu"], "min": b["bleu"], "max": b["bleu"]}
        for name, s in scores.items()
        for b in s["bleu_by_length"]
        if b["sentences"] > 0
    ]
    draw_comparison(
        by_length,
        metric="test BLEU",
        x_label="source length (words, bucket's upper edge)",
        title="BLEU against sentence length",
        path=folder / "bleu_by_length.png",
    )
    return {
        "models": {
            name: {
                "bleu": scores[name]["bleu"],
                "chrf": scores[name]["chrf"],
                "parameters": row["parameters"],
                "seconds": row["seconds"],
                "steps": row["step"],
                "alignment_error_rate": errors.get(name),
            }
            for name, row in zip(runs, rows)
        },
        "sentence": sentence,
        "alignments": f"{NAME}/alignments.png",
        "bleu_by_length": f"{NAME}/bleu_by_length.png",
    }


def _row(name: str, m: dict[str, Any]) -> list[object]:
    aer = m["alignment_error_rate"]
    cells = (
        ["-", "-"]
        if not aer
        else [f"{min(v['argmax'] for v in aer.values()):.1%}", f"{min(v['threshold'] for v in aer.values()):.1%}"]
    )
    return [
        LABELS[name],
        f"{m['parameters']:,}",
        f"{m['bleu']:.1f}",
        f"{m['chrf']:.1f}",
        *cells,
        f"{m['seconds']:.0f} s",
    ]


def render(result: dict[str, Any]) -> str:
    """BLEU, chrF and alignment error rates per family; the alignments and BLEU by length."""
    return (
        report.paragraph(
            "A generated language pair (<code>attnlab translate</code> corpus <code>toy</code>): the target "
            "language puts the verb last, the adjective after its noun, marks plurals with a word of their own and "
            "drops articles, so the word alignments are known. Each family is trained by the same loop; BLEU is "
            "sacreBLEU's on the test set, greedy decoding. The alignment error rate compares each model's "
            "cross-attention (teacher-forced on the reference, heads averaged, best layer) with the known "
            "alignments: the argmax of each row, or every weight above 0.3."
        )
        + report.table(
            ["model", "parameters", "BLEU", "chrF", "AER (argmax)", "AER (threshold)", "training"],
            [_row(name, m) for name, m in result["models"].items()],
        )
        + report.paragraph(
            "What each attention model looks at while writing the translation of <i>{sentence}</i>:",
            sentence=result["sentence"],
        )
        + report.images([result["alignments"]], alt="alignment matrices")
        + report.paragraph(
            "BLEU against the length of the source sentence: the model without attention must "
            "squeeze the whole sentence into one vector."
        )
        + report.images([result["bleu_by_length"]], alt="BLEU against sentence length")
    )
