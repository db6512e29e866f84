"""The tour's memory-network section, quick: it trains, scores the hops and draws them into a folder."""

import json

from attnlab.tour_babi import babi_section


def test_quick_babi_section_returns_metrics_and_existing_images(tmp_path):
    result = babi_section(tmp_path, seed=0, quick=True)
    assert set(result["error_per_task"]) == {1, 2, 3, 6, 7, 8}
    assert 0.0 <= result["accuracy"] <= 1.0 and result["steps"] == 4 and result["parameters"] > 0
    assert set(result["support_attention"]) == {1, 2, 3, 6, 7, 8}
    assert all(set(v) == {"hop1", "hop2", "hop3", "any_hop", "questions"} for v in result["support_attention"].values())
    assert len(result["images"]) == 3
    for image in result["images"]:
        assert (tmp_path / image).stat().st_size > 1000 and image in result["html"]
    assert (tmp_path / result["run"] / "model.safetensors").is_file()
    json.dumps(result, default=str)  # the tour writes it into metrics.json
    again = babi_section(tmp_path, seed=0, quick=True)  # a finished run is reused, not retrained
    assert again["seconds"] == result["seconds"]
