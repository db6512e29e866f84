"""attnlab.tour.machines, quick: it trains, tests longer episodes and draws the weights."""

import json
from pathlib import Path

from attnlab.tour import QUICK, machines
from attnlab.tour.machines import COPY_TESTS, RECALL_TESTS


def test_quick_machines_section_returns_metrics_and_existing_images(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = machines.run(out, QUICK, 0)  # reuses the tour's runs
    assert json.loads(json.dumps(result)) == metrics["machines"]
    assert set(result["copy"]) == {"ntm", "lstm"} and set(result["recall"]) == {"ntm"}
    assert all(list(errors) == list(COPY_TESTS) for errors in result["copy"].values())
    assert list(result["recall"]["ntm"]) == list(RECALL_TESTS)
    # an untrained model errs on about half of the 8 * length bits, more on longer sequences
    copy = result["copy"]["ntm"]
    assert 0 < copy[COPY_TESTS[0]] < copy[COPY_TESTS[-1]] <= 8 * COPY_TESTS[-1]
    assert result["parameters"]["ntm"] > 0 and result["parameters"]["lstm"] > 0
    assert len(result["images"]) == 2
    fragment = machines.render(metrics["machines"])
    for image in result["images"]:
        assert (out / image).stat().st_size > 1000 and image in fragment
    assert "<th>length 16</th>" in fragment and "<th>6 items</th>" in fragment
    assert f"<td>{copy[COPY_TESTS[0]]:.2f}</td>" in fragment
