"""The tour's runs open in the explorer (`make tour`, then `attnlab serve tour`): every run, every view."""

from pathlib import Path

from explorer.support import Served


def test_every_tour_run_opens_with_every_view(quick_tour: tuple[Path, dict]) -> None:
    out, _ = quick_tour
    served = Served([out])
    try:
        index = served.ok("/api/runs")
        runs = index["runs"]
        assert len(runs) >= 20 and not [r["id"] for r in runs if r["error"]]
        families = {r["family"] for r in runs}
        assert {"transformer", "memn2n", "ntm", "ram", "show_attend_tell", "bahdanau"} <= families
        viewed = set()
        for run in runs:
            opened = served.ok("/api/run", id=run["id"])
            for view in opened["views"]:
                name = view["name"] if isinstance(view, dict) else view
                data = served.ok("/api/view", id=run["id"], view=name, example=0)
                assert data["view"] == name
                viewed.add(name)
        assert {"heads", "hops", "machine", "glimpse", "caption", "translation"} <= viewed
    finally:
        served.stop()
