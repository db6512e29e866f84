"""attnlab.tour.glimpse, quick: it trains RAM and a CNN on generated clutter and draws glimpse paths."""

import json
from pathlib import Path

from attnlab.tour import QUICK, glimpse


def test_quick_glimpse_section_returns_metrics_and_an_existing_image(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = glimpse.run(out, QUICK, 0)  # reuses the tour's runs
    assert json.loads(json.dumps(result)) == metrics["glimpse"]
    assert set(result["models"]) == {"ram", "image_cnn"}
    for row in result["models"].values():
        assert 0.0 <= row["error"] <= 1.0 and row["parameters"] > 0
    (image,) = result["images"]
    fragment = glimpse.render(metrics["glimpse"])
    assert (out / image).stat().st_size > 1000 and image in fragment
    assert "<td>recurrent attention model</td>" in fragment and "<td>CNN</td>" in fragment
