"""Train attnlab's own small encoder on generated Winograd twins, then ask where its attention points.

The model is the "transformer" family (a bidirectional encoder, Vaswani et al. 2017, read at the
last position like BERT's token classifiers) trained from scratch through `attnlab.train.train`
on the "pronouns" task (attnlab.tasks.pronouns): a sentence, then a query token at which the
antecedent noun's token is the answer. The probe is the one used on the pretrained MiniLM
(attnlab.probes.pronouns, after Clark et al. 2019), on held-out noun pairs: head (layer l, head n)
is right on a sentence when, from a row r,

    A_{l,n}[r, true antecedent] > A_{l,n}[r, other candidate]          (a tie counts one half)

with r the pronoun's position or the query's. The head to trust is chosen on the "val" twins
and scored on the "test" twins (both held-out noun pairs, never trained on).

Why layer 0 sits at exactly 50%: the twins differ only in the switch word, and before any mixing a
row's scores for the two candidates do not depend on it (it only changes the softmax's
normaliser), so every head makes the same pick in both twins: one right, one wrong. A head beats
50% only from layer 1 on, once the switch word has been mixed into the row that looks.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from attnlab.core import capture
from attnlab.errors import ConfigError
from attnlab.probes import pronouns
from attnlab.tasks.base import Batch
from attnlab.tasks.pronouns import Pronouns
from attnlab.train import Run, ensure, load_run, resolve
from attnlab.viz.probes import draw_token_bars

MODEL = {"embed_dim": 64, "num_heads": 4, "num_layers": 3}  # the default small encoder (about 1.7e5 parameters)
# about 1 min on one CPU thread
TRAIN = {"steps": 1500, "batch_size": 64, "eval_every": 250, "eval_size": 512, "device": "cpu"}
ROWS = ("pronoun", "query")  # the positions whose attention is scored


@torch.no_grad()
def attention(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """Every self-attention layer's weights on batch and the logits: (L, b, h, t, t), (b, n, o).

    Puts the model in eval mode (no dropout) and records through attnlab.core.capture.
    """
    model.eval()
    with capture(model) as trace:
        logits = model(batch.inputs)  # (b, n, o)
    records = trace.select(kind="self")
    if not records:
        raise ValueError("attention: the model recorded no self-attention (not an attention model?)")
    return torch.stack([r.weights for r in records]), logits  # (L, b, h, t, t), (b, n, o)


def candidate_scores(attn: Tensor, rows: Tensor, candidates: Tensor) -> Tensor:
    """The attention from one row of every example to its two candidates, for every layer and head.

    Args:
        attn: (L, b, h, t, t) weights, rows are queries.
        rows: (b,) the position whose attention is read in each example.
        candidates: (b, 2) the two candidates' positions.
    Returns:
        (b, L, h, 2), the layout of attnlab.probes.pronouns.head_correct.
    """
    L, b, h, t, _ = attn.shape
    index = rows.view(1, b, 1, 1, 1).expand(L, b, h, 1, t)  # (L, b, h, 1, t)
    row = attn.gather(3, index).squeeze(3)  # (L, b, h, t)
    picked = row.gather(3, candidates.view(1, b, 1, 2).expand(L, b, h, 2))  # (L, b, h, 2)
    return picked.permute(1, 0, 2, 3)  # (b, L, h, 2)


def head_rates(attn: Tensor, rows: Tensor, candidates: Tensor, labels: Tensor) -> Tensor:
    """(L, h): how often each head puts more weight on the true antecedent than on the other candidate."""
    return pronouns.head_correct(candidate_scores(attn, rows, candidates), labels).mean(0)  # (L, h)


def shortcut_baselines(task: Pronouns, heldout: Batch, *, train_size: int = 4096) -> dict[str, float]:
    """Held-out accuracy of rules that ignore the meaning: a fixed position, or the switch word alone.

    The switch-word rule answers, for each switch word, the slot it most often points at in a
    training sample of `train_size` sentences.
    """
    m = task.mentions(heldout)
    switch = heldout.inputs.gather(1, m.switch[:, None])[:, 0]  # (b,)
    sample = task.sample(train_size, torch.Generator().manual_seed(0))
    ms = task.mentions(sample)
    seen = Counter(zip(sample.inputs.gather(1, ms.switch[:, None])[:, 0].tolist(), ms.label.tolist()))
    rule = {w: int(seen[(w, 1)] > seen[(w, 0)]) for w, _ in seen}
    guess = torch.tensor([rule.get(w, 0) for w in switch.tolist()])  # (b,)
    return {
        "first_candidate": float((m.label == 0).float().mean()),
        "second_candidate": float((m.label == 1).float().mean()),
        "switch_word_alone": float((guess == m.label).float().mean()),
    }


def probe_run(task: Pronouns, model: nn.Module, *, size: int = 512) -> dict[str, Any]:
    """Score the heads of a trained model on held-out twins.

    `size` (even) sentences, size / 2 twin pairs, in each of the selection ("val") and evaluation
    ("test") sets; both use only held-out noun pairs.
    Returns a dict: "from_pronoun" and "from_query", each attnlab.probes.pronouns.probe's result
    (head chosen on val, scored on test, (L, h) grids, per-layer best heads) plus
    "heads_averaged_eval_accuracy" (per layer, the heads' weights averaged before comparing);
    "heldout_accuracy" and "twin_pairs_both_right" (the model's answers on test); "sizes";
    "baselines" (`shortcut_baselines`).
    """
    if size < 2 or size % 2:
        raise ValueError(f"probe_run: size must be an even number >= 2 (twin pairs), got {size}")
    sets = {split: task.eval_set(size, split) for split in ("val", "test")}
    attn, right, mentions = {}, {}, {}
    for split, batch in sets.items():
        attn[split], logits = attention(model, batch)  # (L, b, h, t, t), (b, 1, o)
        right[split] = logits[:, -1].argmax(-1) == batch.targets[:, -1]  # (b,)
        mentions[split] = task.mentions(batch)
    out: dict[str, Any] = {}
    for kind in ROWS:
        scores = {
            s: candidate_scores(attn[s], getattr(mentions[s], kind), mentions[s].candidates) for s in sets
        }  # each (b, L, h, 2)
        out[f"from_{kind}"] = pronouns.probe(
            scores["val"], mentions["val"].label, scores["test"], mentions["test"].label
        )
        pooled = scores["test"].mean(2, keepdim=True)  # (b, L, 1, 2): the layer's heads averaged
        out[f"from_{kind}"]["heads_averaged_eval_accuracy"] = (
            pronouns.head_correct(pooled, mentions["test"].label).mean(0)[:, 0].tolist()
        )
    test = right["test"]
    out["heldout_accuracy"] = float(test.float().mean())
    out["twin_pairs_both_right"] = float(test.view(-1, 2).all(1).float().mean())
    out["sizes"] = {"selection": len(sets["val"]), "heldout": len(sets["test"])}
    out["baselines"] = shortcut_baselines(task, sets["test"])
    return out


def twin_rows(
    task: Pronouns, model: nn.Module, *, layer: int, head: int, kind: str = "query", seed: int = 0
) -> list[dict[str, Any]]:
    """One held-out twin pair and one head's attention from the pronoun or query row, for drawing.

    Returns a list of two dicts: tokens (t real tokens), weights (t,), candidates (two token
    indices), answer (the true antecedent's index among the tokens), predicted (the model's answer).
    """
    if kind not in ROWS:
        raise ValueError(f"twin_rows: kind must be one of {ROWS}, got {kind!r}")
    pair = task.encode(task.draw(2, torch.Generator().manual_seed(seed), split="heldout", twins=True))
    attn, logits = attention(model, pair)  # (L, 2, h, t, t), (2, 1, o)
    m = task.mentions(pair)
    names = task.token_names()
    out = []
    for n in range(2):
        real = int((pair.inputs[n] != 0).sum())
        start = pair.inputs.shape[1] - real  # left padding
        row = attn[layer, n, head, int(getattr(m, kind)[n]), start:]  # (t_real,)
        out.append(
            {
                "tokens": [names[int(i)] for i in pair.inputs[n, start:]],
                "weights": row,
                "candidates": [int(c) - start for c in m.candidates[n]],
                "answer": int(m.candidates[n, m.label[n]]) - start,
                "predicted": names[int(logits[n, -1].argmax())],
            }
        )
    return out


def train_run(
    folder: str | Path,
    *,
    task: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    train_settings: dict[str, Any] | None = None,
) -> tuple[Run, dict[str, Any]]:
    """Train the "transformer" family on "pronouns" into `folder`; returns the loaded run and its test summary.

    task, model and train_settings override the task's defaults, MODEL and TRAIN (plain data, as
    in a run's config.yaml). attnlab.train.ensure trains it: a folder that already holds this
    finished run is reused, a killed one resumed; one that holds another run is a RunError.
    """
    folder = Path(folder)
    config = resolve(
        {
            "task": {"name": "pronouns", **(task or {})},
            "model": {"name": "transformer", **MODEL, **(model or {})},
            "train": {**TRAIN, **(train_settings or {})},
        }
    )
    summary = ensure(config, folder)
    return load_run(folder), summary


def train_and_probe(folder: str | Path, *, size: int = 512, **overrides: dict[str, Any] | None) -> dict[str, Any]:
    """`train_run` (overrides: task, model, train_settings), then `probe_run` on `size` sentences per split.

    Returns the run's config, its test summary ("train"), the probe and the seconds spent.
    """
    start = time.perf_counter()
    run, summary = train_run(folder, **overrides)
    if not isinstance(run.task, Pronouns):
        raise ConfigError(f"task: the probe reads the pronouns task, not {run.config.task!r}")
    result = {"config": run.config.to_dict(), "train": summary, **probe_run(run.task, run.model, size=size)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def draw_twins(
    rows: list[dict[str, Any]], *, layer: int, head: int, kind: str, path: str | Path | None = None
) -> Figure:
    """Draw `twin_rows` with attnlab.viz.probes.draw_token_bars: the antecedent red, the other candidate orange."""
    titles = [
        f"{' '.join(r['tokens'][:-1])}  (answer {r['tokens'][r['answer']]}, model says {r['predicted']})" for r in rows
    ]
    return draw_token_bars(
        [(r["tokens"], r["weights"]) for r in rows],
        titles=titles,
        highlight=[r["candidates"] for r in rows],
        answers=[r["answer"] for r in rows],
        ylabel=f"weight from {'?' if kind == 'query' else 'it'}",
        title=f"own encoder, layer {layer} head {head}, from the {kind}: antecedent red, other candidate orange",
        path=path,
    )
