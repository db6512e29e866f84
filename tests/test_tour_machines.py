"""The tour's memory-machine section, quick: it trains, tests longer episodes and draws the weights."""

import json

from attnlab.tour_machines import COPY_TESTS, RECALL_TESTS, machines_section


def test_quick_machines_section_returns_metrics_and_existing_images(tmp_path):
    result = machines_section(tmp_path, seed=0, quick=True)
    assert set(result["copy"]) == {"ntm", "lstm"} and set(result["recall"]) == {"ntm"}
    assert all(list(errors) == list(COPY_TESTS) for errors in result["copy"].values())
    assert list(result["recall"]["ntm"]) == list(RECALL_TESTS)
    # an untrained model errs on about half of the 8 * length bits, more on longer sequences
    copy = result["copy"]["ntm"]
    assert 0 < copy[COPY_TESTS[0]] < copy[COPY_TESTS[-1]] <= 8 * COPY_TESTS[-1]
    assert result["parameters"]["ntm"] > 0 and result["parameters"]["lstm"] > 0
    assert len(result["images"]) == 2
    for image in result["images"]:
        assert (tmp_path / image).stat().st_size > 1000 and image in result["html"]
    json.dumps(result, default=str)  # the tour writes it into metrics.json
