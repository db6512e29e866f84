import json

from attnlab.tour_translation import FAMILIES, translation_section


def test_quick_section_trains_every_family_and_draws(tmp_path):
    result = translation_section(tmp_path, seed=0, quick=True)
    assert set(result["models"]) == set(FAMILIES)
    assert result["models"]["seq2seq"]["alignment_error_rate"] is None
    for name in ("bahdanau", "luong", "encdec"):
        errors = result["models"][name]["alignment_error_rate"]
        assert all(0 <= v["argmax"] <= 1 for v in errors.values())
    for key in ("alignments", "bleu_by_length"):
        assert (tmp_path / result[key]).stat().st_size > 1000
    assert "<table>" in result["html"] and result["sentence"] in result["html"]
    json.dumps({k: v for k, v in result.items() if k != "html"})  # serialisable for metrics.json
