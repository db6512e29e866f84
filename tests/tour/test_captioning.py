"""attnlab.tour.captioning, quick: scenes captioned, digit words' attention scored, figures drawn."""

import json
from pathlib import Path

from attnlab.tour import QUICK, captioning


def test_quick_captioning_scores_where_digit_words_look(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = captioning.run(out, QUICK, 0)  # reuses the tour's run
    assert json.loads(json.dumps(result)) == metrics["captioning"]
    assert result["steps"] == QUICK.captioning.train.steps and result["parameters"] > 0
    assert 0.0 <= result["bleu4"] <= 100.0 and result["cider"] >= 0.0
    attention = result["attention"]
    assert attention["words"] > 0 and 0 <= attention["hits"] <= attention["words"]
    assert attention["rate"] == round(attention["hits"] / attention["words"], 3)
    for k in range(2):
        assert (out / "captioning" / "viz" / f"caption_{k}.png").stat().st_size > 1000
    html = captioning.render(metrics["captioning"])
    assert f"of the {attention['words']} digit words" in html and 'src="captioning/viz/caption_0.png"' in html
