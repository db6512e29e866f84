"""Does a head's attention from a pronoun pick its antecedent? Winograd pairs and an attention probe.

Winograd schemas (Levesque, Davis & Morgenstern 2012) come in twins that differ in one word, which
flips the pronoun's referent ("... because it was too tired" -> the animal, "... too wide" -> the
street). Because the true antecedent is the first-mentioned candidate in one twin and the second in
the other, a head that always looks at the first noun, the nearest noun or the subject scores
exactly 50% on a balanced set of twins: only resolution beats chance.

The probe follows Clark et al. 2019 ("What Does BERT Look At?", section 4, coreference) for a head (layer l,
head n): the word-level attention from the pronoun to a candidate is the mean over the pronoun's
WordPiece rows of the sum over the candidate head word's WordPiece columns,

    a_{l,n}(c) = mean_{i in pronoun} sum_{j in head word of c} A_{l,n}[i, j]
    correct    = a(true antecedent) > a(other candidate)          (a tie counts one half)

and the head to trust is chosen on one split and scored on another (or on WSC273).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from attnlab.data.pronoun_templates import TEMPLATES, Template

if TYPE_CHECKING:
    from attnlab.pretrained import PretrainedEncoder

Span = tuple[int, int]  # [start, end) character offsets into the text


@dataclass(frozen=True)
class PronounExample:
    text: str  # the sentence
    pronoun: Span  # where the pronoun is
    candidates: tuple[Span, Span]  # the head word of each candidate antecedent
    label: int  # 0 or 1: which candidate the pronoun refers to
    group: str  # the schema: twins share it and always land in the same split
    options: tuple[str, str]  # the candidates as written (for display)


def render(template: Template, a: str, b: str, word: str, label: int, group: str) -> PronounExample:
    """Fill a template, keeping the character span of each candidate and of the pronoun."""
    fills = {"a": a, "b": b, "p": template.pronoun, "w": word}
    text, spans = "", {}
    for piece in re.split(r"(\{[abpw]\})", template.text):
        if re.fullmatch(r"\{[abpw]\}", piece):
            key = piece[1]
            spans[key] = (len(text), len(text) + len(fills[key]))
            text += fills[key]
        else:
            text += piece
    return PronounExample(text, spans["p"], (spans["a"], spans["b"]), label, group, (f"the {a}", f"the {b}"))


def generate_pairs(*, schemas_per_template: int = 12, seed: int = 0) -> list[PronounExample]:
    """Winograd-style twins from TEMPLATES: per template, `schemas_per_template` noun pairs x 2 twins.

    Deterministic for a seed; labels are balanced (one twin says 0, the other 1).
    """
    rng = random.Random(seed)
    out: list[PronounExample] = []
    for template in TEMPLATES:
        pairs = [(a, b) for a in template.first for b in template.second if a != b]
        rng.shuffle(pairs)
        for n, (a, b) in enumerate(pairs[:schemas_per_template]):
            words = template.switches[rng.randrange(len(template.switches))]
            group = f"{template.name}:{n}"
            out.extend(render(template, a, b, words[label], label, group) for label in (0, 1))
    return out


def split_by_group(examples: Sequence[PronounExample], *, seed: int = 0) -> tuple[list, list]:
    """Halve the schemas at random (twins stay together): (selection split, held-out split)."""
    groups = sorted({e.group for e in examples})
    random.Random(seed).shuffle(groups)
    chosen = set(groups[: len(groups) // 2])
    return [e for e in examples if e.group in chosen], [e for e in examples if e.group not in chosen]


# ------------------------------------------------------------------ WSC readers


def read_wsc_jsonl(path: str | Path) -> list[PronounExample]:
    """Read the JSONL form of WSC (fields text, pronoun, pronoun_char_offset, options, label)."""
    path = Path(path)
    out = []
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: invalid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object")
        missing = [k for k in ("text", "pronoun", "pronoun_char_offset", "options", "label") if k not in row]
        if missing:
            raise ValueError(f"{where}: missing fields {missing}")
        group = str(row.get("idx", lineno - 1))
        out.append(
            _wsc_example(
                row["text"], row["pronoun"], row["pronoun_char_offset"], row["options"], row["label"], group, where
            )
        )
    return out


def read_wsc_xml(path: str | Path, *, limit: int | None = None) -> list[PronounExample]:
    """Read the original WSCollection.xml (<schema> with txt1/pron/txt2, answers, correctAnswer).

    The text is txt1 + pronoun + txt2 with whitespace collapsed; `limit` keeps the first schemas
    (273 for WSC273).
    """
    path = Path(path)
    raw = path.read_bytes() if path.is_file() else _read_text(path).encode()
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as err:
        raise ValueError(f"{path}:{err.position[0]}: malformed XML ({err})") from None
    lines = _schema_lines(raw)
    out = []
    for n, schema in enumerate(root.iter("schema")):
        if limit is not None and n >= limit:
            break
        where = f"{path}:{lines[n] if n < len(lines) else '?'}"
        txt1, pron, txt2 = (schema.find(f"text/{tag}") for tag in ("txt1", "pron", "txt2"))
        answers = [_clean(a.text) for a in schema.findall("answers/answer")]
        correct = _clean(schema.findtext("correctAnswer")).rstrip(".").strip()
        if txt1 is None or pron is None or txt2 is None or len(answers) != 2 or correct not in ("A", "B"):
            raise ValueError(f"{where}: schema {n} needs text/txt1, pron, txt2, two answers and correctAnswer A or B")
        raw1, raw_pron, raw2 = ((part.text or "").replace("\xa0", " ") for part in (txt1, pron, txt2))
        before, pronoun = _clean(raw1), _clean(raw_pron)
        text = _clean(raw1 + raw_pron + raw2)  # the XML's own whitespace decides "them ." vs "them."
        gap = before and (raw1[-1:].isspace() or raw_pron[:1].isspace())
        offset = len(before) + 1 if gap else len(before)
        out.append(_wsc_example(text, pronoun, offset, answers, "AB".index(correct), str(n), where))
    return out


def load_wsc273(data_dir: str | Path | None = None) -> list[PronounExample] | None:
    """WSC273 from `data_dir`/wsc273/wsc273.jsonl (default: env ATTNLAB_DATA); None if absent."""
    root = data_dir if data_dir is not None else os.environ.get("ATTNLAB_DATA")
    if root is None:
        return None
    path = Path(root) / "wsc273" / "wsc273.jsonl"
    return read_wsc_jsonl(path) if path.is_file() else None


def _wsc_example(
    text: object, pronoun: object, offset: object, options: object, label: Any, group: str, where: str
) -> PronounExample:
    """An example from one record's raw values, each checked here."""
    if not isinstance(text, str) or not isinstance(pronoun, str) or not isinstance(offset, int):
        raise ValueError(f"{where}: text and pronoun must be strings and pronoun_char_offset an integer")
    if text[offset : offset + len(pronoun)].lower() != pronoun.lower() or not pronoun:
        raise ValueError(f"{where}: pronoun {pronoun!r} is not at character {offset} of the text")
    if not (isinstance(options, list) and len(options) == 2 and all(isinstance(o, str) and o for o in options)):
        raise ValueError(f"{where}: options must be a list of two non-empty strings; got {options!r}")
    if label not in (0, 1) or isinstance(label, bool):
        raise ValueError(f"{where}: label must be 0 or 1; got {label!r}")
    p_span = (offset, offset + len(pronoun))
    first, second = (_head_word(_find_mention(text, o, p_span, where), text) for o in options)
    return PronounExample(text, p_span, (first, second), label, group, (options[0], options[1]))


def _find_mention(text: str, option: str, pronoun: Span, where: str) -> Span:
    """The occurrence of `option` nearest before the pronoun, else the first after it."""
    pattern = re.compile(r"(?<!\w)" + re.escape(option) + r"(?!\w)", re.IGNORECASE)
    spans = [m.span() for m in pattern.finditer(text) if m.end() <= pronoun[0] or m.start() >= pronoun[1]]
    if not spans:
        raise ValueError(f"{where}: option {option!r} does not occur in the text (outside the pronoun)")
    before = [s for s in spans if s[1] <= pronoun[0]]
    return before[-1] if before else spans[0]


def _head_word(span: Span, text: str) -> Span:
    """The last word of a mention ("the brown suitcase" -> "suitcase"): English noun phrases end in their head."""
    words = list(re.finditer(r"[\w'-]+", text[span[0] : span[1]]))
    last = words[-1]
    start = span[0] + last.start()
    word = last.group()
    if word.lower().endswith("'s"):  # a possessive mention ("Bob's") still points at its noun
        word = word[:-2]
    return start, start + len(word)


def _clean(s: str | None) -> str:
    return " ".join((s or "").replace("\xa0", " ").split())


def _schema_lines(raw: bytes) -> list[int]:
    return [raw.count(b"\n", 0, m.start()) + 1 for m in re.finditer(rb"<schema[\s>]", raw)]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start})") from None


# ------------------------------------------------------------------ the attention probe


def token_indices(offsets: Sequence[tuple[int, int]], span: Span) -> list[int]:
    """Tokens whose character span overlaps `span`; special tokens ((0, 0)) never do."""
    return [n for n, (s, e) in enumerate(offsets) if s < span[1] and e > span[0] and e > s]


def candidate_attention(attn: Tensor, pronoun: Sequence[int], candidates: Sequence[Sequence[int]]) -> Tensor:
    """Word-level attention from the pronoun to each candidate, for every layer and head.

    Args:
        attn: (L, h, t, t) one sentence's attention, rows are queries.
        pronoun: token indices of the pronoun (its rows are averaged).
        candidates: for each candidate, the token indices of its head word (their columns are summed).
    Returns:
        (L, h, c) with c = len(candidates).
    """
    rows = attn[:, :, list(pronoun)].mean(2)  # (L, h, t)
    return torch.stack([rows[..., list(c)].sum(-1) for c in candidates], dim=-1)  # (L, h, c)


def head_correct(scores: Tensor, labels: Tensor) -> Tensor:
    """(n, L, h, 2) candidate attention, (n,) labels -> (n, L, h) 1 right, 0 wrong, 0.5 tie."""
    true = scores.gather(-1, labels.view(-1, 1, 1, 1).expand(*scores.shape[:-1], 1))[..., 0]  # (n, L, h)
    other = scores.gather(-1, (1 - labels).view(-1, 1, 1, 1).expand(*scores.shape[:-1], 1))[..., 0]  # (n, L, h)
    return (true > other).float() + 0.5 * (true == other).float()  # (n, L, h)


@torch.no_grad()
def score_examples(encoder: PretrainedEncoder, examples: Sequence[PronounExample], *, batch_size: int = 16) -> Tensor:
    """(n, L, h, 2) attention from each example's pronoun to its two candidates, for every head."""
    out = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        attn, batch = encoder.attentions([e.text for e in chunk])  # (L, b, h, t, t)
        for n, e in enumerate(chunk):
            offs = batch.offsets[n]
            idx = [token_indices(offs, s) for s in (e.pronoun, *e.candidates)]
            if not all(idx):
                raise ValueError(f"score_examples: a span of {e.text!r} covers no token (truncated?)")
            out.append(candidate_attention(attn[:, n], idx[0], idx[1:]))  # (L, h, 2)
    return torch.stack(out)  # (n, L, h, 2)


def probe(scores_sel: Tensor, labels_sel: Tensor, scores_eval: Tensor, labels_eval: Tensor) -> dict:
    """Choose heads on the selection split, score them on the evaluation split.

    Returns a dict: the (L, h) accuracy grids of both splits, the best head overall and per layer
    (chosen on selection) with their evaluation accuracy, and its binomial p-value against 50%.
    """
    sel = head_correct(scores_sel, labels_sel).mean(0)  # (L, h)
    ev_correct = head_correct(scores_eval, labels_eval)  # (n, L, h)
    ev = ev_correct.mean(0)  # (L, h)
    flat = int(sel.flatten().argmax())
    layer, head = divmod(flat, sel.shape[1])
    per_layer = [int(sel[n].argmax()) for n in range(sel.shape[0])]
    hits = float(ev_correct[:, layer, head].sum())
    n = ev_correct.shape[0]
    return {
        "best_head": [layer, head],
        "selection_accuracy": float(sel[layer, head]),
        "eval_accuracy": float(ev[layer, head]),
        "eval_n": n,
        "eval_p_value": binomial_p_value(round(hits), n),
        "eval_interval95": wilson_interval(hits, n),
        "per_layer_best_head": per_layer,
        "per_layer_eval_accuracy": [float(ev[n, h]) for n, h in enumerate(per_layer)],
        "per_layer_mean_eval_accuracy": ev.mean(1).tolist(),
        "selection_grid": sel.tolist(),
        "eval_grid": ev.tolist(),
    }


def labels_of(examples: Sequence[PronounExample]) -> Tensor:
    """(n,) long tensor of the examples' labels."""
    return torch.tensor([e.label for e in examples], dtype=torch.long)


def binomial_p_value(k: int, n: int) -> float:
    """One-sided P(X >= k) for X ~ Binomial(n, 1/2): how often chance does at least this well."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def wilson_interval(hits: float, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval of a proportion hits / n (95% by default)."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


def position_baselines(examples: Sequence[PronounExample]) -> dict[str, float]:
    """Accuracy of picking the first-mentioned candidate, and the one nearest before the pronoun."""
    first = [e.label == min((0, 1), key=lambda c: e.candidates[c][0]) for e in examples]
    nearest = [
        e.label == max((0, 1), key=lambda c: e.candidates[c][0] if e.candidates[c][0] < e.pronoun[0] else -1)
        for e in examples
    ]
    return {"first_mentioned": sum(first) / len(examples), "nearest_before": sum(nearest) / len(examples)}


@torch.no_grad()
def substitution_accuracy(encoder: PretrainedEncoder, examples: Sequence[PronounExample]) -> float:
    """A no-attention baseline: put each candidate in the pronoun's place and keep the one whose
    sentence embedding stays closer (cosine) to the original's. A stand-in for likelihood scoring
    (Trinh & Le 2018) for encoders without a language-model head."""
    texts = [
        t for e in examples for t in (e.text, *(e.text[: e.pronoun[0]] + o + e.text[e.pronoun[1] :] for o in e.options))
    ]
    emb = torch.nn.functional.normalize(encoder.encode(texts), dim=-1).view(len(examples), 3, -1)  # (n, 3, d)
    sims = (emb[:, 1:] * emb[:, :1]).sum(-1)  # (n, 2)
    return float((sims.argmax(1) == labels_of(examples)).float().mean())
