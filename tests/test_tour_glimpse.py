"""The tour's glimpse section, quick: it trains RAM and a CNN on generated clutter and draws glimpse paths."""

import json

from attnlab.tour_glimpse import glimpse_section


def test_quick_glimpse_section_returns_metrics_and_an_existing_image(tmp_path):
    result = glimpse_section(tmp_path, seed=0, quick=True)
    assert set(result["models"]) == {"ram", "image_cnn"}
    for row in result["models"].values():
        assert 0.0 <= row["error"] <= 1.0 and row["parameters"] > 0
    (image,) = result["images"]
    assert (tmp_path / image).stat().st_size > 1000 and image in result["html"]
    json.dumps(result, default=str)
