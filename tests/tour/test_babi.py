"""attnlab.tour.babi, quick: it trains, scores the hops and draws them into a folder."""

import json
from pathlib import Path

from attnlab.tour import QUICK, babi


def test_quick_babi_section_returns_metrics_and_existing_images(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = babi.run(out, QUICK, 0)  # a finished run is reused, not retrained
    saved = metrics["babi"]
    assert result["seconds"] == saved["seconds"]
    assert json.loads(json.dumps(result)) == saved
    assert set(result["error_per_task"]) == {1, 2, 3, 6, 7, 8}
    assert 0.0 <= result["accuracy"] <= 1.0 and result["steps"] == 4 and result["parameters"] > 0
    assert set(result["support_attention"]) == {1, 2, 3, 6, 7, 8}
    assert all(set(v) == {"hop1", "hop2", "hop3", "any_hop", "questions"} for v in result["support_attention"].values())
    assert len(result["images"]) == 3
    fragment = babi.render(saved)
    for image in result["images"]:
        assert (out / image).stat().st_size > 1000 and image in fragment
    assert (out / result["run"] / "model.safetensors").is_file()
    assert "<th>hop1</th><th>hop2</th><th>hop3</th><th>any_hop</th>" in fragment
    rows = fragment.count("<tr>") - 1
    assert rows == 6 and fragment.index("<td>2</td>") < fragment.index("<td>8</td>")
