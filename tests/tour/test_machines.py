"""attnlab.tour.machines, quick: it trains, tests longer episodes and draws the weights."""

import json
from pathlib import Path

import torch

from attnlab.tour import QUICK, machines
from attnlab.tour.machines import COPY_TESTS, RECALL_TESTS, REFERENCE, REFERENCE_TESTS
from attnlab.train import evaluate, load_run, retarget


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
    assert list(result["reference"]["tests"]) == list(REFERENCE_TESTS)
    assert result["reference"]["trained"] == 20 and result["reference"]["parameters"] > 0
    assert result["reference"]["slots"] == 128 and result["reference"]["steps"] == 4000
    assert len(result["images"]) == 3
    fragment = machines.render(metrics["machines"])
    for image in result["images"]:
        assert (out / image).stat().st_size > 1000 and image in fragment
    assert "<th>length 16</th>" in fragment and "<th>6 items</th>" in fragment and "<th>length 120</th>" in fragment
    assert f"<td>{copy[COPY_TESTS[0]]:.2f}</td>" in fragment


def test_the_shipped_reference_ntm_copies_sequences_twice_as_long_as_it_trained_on() -> None:
    run = load_run(REFERENCE)
    assert run.config.task == "ntm_copy" and run.config.task_config.max_length == 20
    for length in (20, 40):
        longer = retarget(run, min_length=length, max_length=length)
        torch.manual_seed(1)
        errors = evaluate(longer.model, longer.task, longer.task.eval_set(32, "test"))["bit_errors"]
        assert errors < 3.0, (length, errors)  # of 8 * length bits; guessing gets 4 * length (80, 160) wrong
