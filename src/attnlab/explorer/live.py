"""The live page: a typed sentence through the pretrained encoder (all-MiniLM-L6-v2), every layer and head.

The encoder is `attnlab.pretrained.load_encoder()`, loaded on the first request and kept; its
forward passes take one lock (`PretrainedEncoder.attentions` attaches a trace to the shared
model). The head marked on the page is the one the pronoun probe (`attnlab.probes.pronouns`,
after Clark et al. 2019) ranks first: read from a tour's metrics.json under the roots when one
holds it, otherwise probed here once with the tour's settings (24 schemas per template, seed 0).
"""

from __future__ import annotations

import threading
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.explorer.discovery import ExplorerError
from attnlab.explorer.views.common import rounded
from attnlab.pretrained import PretrainedEncoder, default_model_path, load_encoder

MAX_CHARS = 300  # characters of a typed sentence
MAX_TOKENS = 48  # word pieces, [CLS] and [SEP] included
PROBE_SCHEMAS, PROBE_SEED = 24, 0  # the tour's probe settings (attnlab.tour.pretrained), so the same head


class Live:
    """The encoder and its probed head, loaded once, shared by every request."""

    def __init__(self) -> None:
        self._encoder: PretrainedEncoder | None = None
        self._probe: dict[str, Any] | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._probe_lock = threading.Lock()

    @staticmethod
    def status() -> dict[str, Any]:
        """{"available": bool, "reason": None or why not} without loading anything."""
        try:
            default_model_path()
        except AttnlabError as err:
            return {"available": False, "reason": str(err)}
        return {"available": True, "reason": None}

    def encoder(self) -> PretrainedEncoder:
        with self._load_lock:
            if self._encoder is None:
                try:
                    self._encoder = load_encoder()
                except AttnlabError as err:
                    raise ExplorerError(503, f"live: the pretrained encoder is not available ({err})") from None
            return self._encoder

    def attend(self, text: str) -> dict[str, Any]:
        """{"tokens": t, "layers": (L, h, t, t), "num_layers", "num_heads"} for one sentence."""
        encoder = self.encoder()
        batch = encoder.tokenize([text])
        if batch.ids.shape[1] > MAX_TOKENS:
            raise ExplorerError(400, f"text: at most {MAX_TOKENS} word pieces, got {batch.ids.shape[1]}")
        with self._run_lock:
            weights, batch = encoder.attentions(batch)  # (L, 1, h, t, t)
        return {
            "tokens": batch.tokens[0],
            "layers": rounded(weights[:, 0]),  # (L, h, t, t)
            "num_layers": int(weights.shape[0]),
            "num_heads": int(weights.shape[2]),
        }

    def probe(self, from_tour: dict[str, Any] | None) -> dict[str, Any]:
        """{"best_head": [layer, head], "source", ...accuracies}: a tour's result, or probed once here."""
        if from_tour is not None:
            return from_tour
        with self._probe_lock:
            if self._probe is None:
                from attnlab.probes import pronouns

                encoder = self.encoder()
                examples = pronouns.generate_pairs(schemas_per_template=PROBE_SCHEMAS, seed=PROBE_SEED)
                selection, heldout = pronouns.split_by_group(examples, seed=PROBE_SEED)
                with self._run_lock:
                    result = pronouns.probe(
                        pronouns.score_examples(encoder, selection),
                        pronouns.labels_of(selection),
                        pronouns.score_examples(encoder, heldout),
                        pronouns.labels_of(heldout),
                    )
                keep = ("selection_accuracy", "eval_accuracy", "eval_n", "eval_p_value")
                layer, head = (int(v) for v in result["best_head"])
                self._probe = {
                    "best_head": [layer, head],
                    **{k: result[k] for k in keep if k in result},
                    "source": "probed by the server (pronoun probe, 24 schemas per template, seed 0)",
                }
            return self._probe
