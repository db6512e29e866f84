"""attnlab.tour.copy, quick: the LM copies, and the copying head is found and drawn."""

import json
from pathlib import Path

from attnlab.tour import QUICK, copy


def test_quick_copy_finds_and_draws_the_copying_head(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = copy.run(out, QUICK, 0)  # reuses the tour's run
    assert json.loads(json.dumps(result)) == metrics["copy"]
    assert result["steps"] == QUICK.copy.train.steps and result["parameters"] > 0
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["sequence_accuracy"] <= 1.0
    head = result["copy_head"]
    assert head["layer"] >= 0 and head["head"] >= 0 and 0.0 < head["weight_on_source"] <= 1.0
    assert (out / "copy" / "copy_head.png").stat().st_size > 1000
    html = copy.render(metrics["copy"])
    assert f"Layer {head['layer']}, head {head['head']}" in html and 'src="copy/copy_head.png"' in html
