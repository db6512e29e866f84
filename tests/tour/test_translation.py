"""attnlab.tour.translation, quick: every family trains on the generated pair, is scored and drawn."""

import html
import json
from pathlib import Path

from attnlab.tour import QUICK, translation


def test_quick_section_trains_every_family_and_draws(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = translation.run(out, QUICK, 0)  # reuses the tour's runs
    assert json.loads(json.dumps(result)) == metrics["translation"]
    assert set(result["models"]) == set(translation.FAMILIES)
    assert result["models"]["seq2seq"]["alignment_error_rate"] is None
    for name in ("bahdanau", "luong", "encdec"):
        errors = result["models"][name]["alignment_error_rate"]
        assert all(0 <= v["argmax"] <= 1 for v in errors.values())
    for key in ("alignments", "bleu_by_length"):
        assert (out / result[key]).stat().st_size > 1000
    fragment = translation.render(metrics["translation"])
    assert "<table>" in fragment and html.escape(result["sentence"]) in fragment
    assert "<td>no attention (GRU)</td>" in fragment and "<td>-</td><td>-</td>" in fragment
