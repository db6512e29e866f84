"""attnlab.tour.families, quick: every family on long_range at three distances and on reverse."""

import json
from pathlib import Path

from attnlab.tour import QUICK, families


def test_quick_families_summarise_and_draw(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = families.run(out, QUICK, 0)  # reuses the tour's runs
    assert json.loads(json.dumps(result)) == metrics["families"]
    far, rev = result["long_range"], result["reverse"]
    assert {(s["model"], s["setting"]) for s in far["summary"]} == {
        (m, d) for m in families.FAMILIES for d in families.DISTANCES}
    assert [s["model"] for s in rev["summary"]] == list(families.SEQUENCE_FAMILIES)
    assert all(0.0 <= s["mean"] <= 1.0 and 0.0 <= s["sequence_accuracy"] <= 1.0 for s in far["summary"] + rev["summary"])
    assert len(far["runs"]) == 15 and len(rev["runs"]) == 5
    for part in (far, rev):
        assert part["attention"] and all((out / p).stat().st_size > 1000 for p in part["attention"])
        assert (out / part["plot"]).stat().st_size > 1000
    assert all(p.startswith("long_range/viz/") for p in far["attention"])
    assert all(p.startswith("reverse/viz/") for p in rev["attention"])
    html = families.render(metrics["families"])
    assert "<th>distance 64</th>" in html and "<th>sequence_accuracy</th>" in html
    for model in families.SEQUENCE_FAMILIES:
        assert f"<td>{model}</td>" in html
