"""attnlab.tour.glimpse, quick: it trains RAM and a CNN on generated clutter, tests the shipped reference
RAM on the same canvases, counts the cost as the canvas grows and draws glimpse paths."""

import json
from pathlib import Path

import torch

from attnlab.tour import FULL, QUICK, glimpse
from attnlab.tour.glimpse import COST_SIZES, MODELS, REFERENCE, TASK
from attnlab.train import evaluate, load_run


def test_quick_glimpse_section_returns_metrics_and_existing_images(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    result = glimpse.run(out, QUICK, 0)  # reuses the tour's runs
    assert json.loads(json.dumps(result)) == metrics["glimpse"]
    assert set(result["models"]) == {"ram", "image_cnn", "reference"}
    for name, row in result["models"].items():
        assert 0.0 <= row["error"] <= 1.0 and row["parameters"] > 0
        assert row["trained"] == ("loaded" if name == "reference" else "live")
    assert result["models"]["ram"]["steps"] == QUICK.glimpse.ram.steps
    assert result["models"]["reference"]["steps"] > 1000
    # the glimpses cost the same at every size; the CNN's cost grows with the area
    ram, cnn = result["cost"]["ram"], result["cost"]["image_cnn"]
    assert list(ram) == list(cnn) == list(COST_SIZES)
    assert len(set(ram.values())) == 1 and ram[COST_SIZES[0]] > 0
    assert all(cnn[a] < cnn[b] for a, b in zip(COST_SIZES, COST_SIZES[1:]))
    assert cnn[COST_SIZES[-1]] > 20 * ram[COST_SIZES[-1]]
    fragment = glimpse.render(metrics["glimpse"])
    assert len(result["images"]) == 2
    for image in result["images"]:
        assert (out / image).stat().st_size > 1000 and image in fragment
    assert "<td>recurrent attention model</td>" in fragment and "<td>CNN</td>" in fragment
    assert "<td>recurrent attention model (reference)</td>" in fragment and "<td>loaded</td>" in fragment
    assert "<th>200x200</th>" in fragment
    assert result["guided_steps"] == (QUICK.glimpse.ram.guide_steps or 0) and "steps guided" not in fragment
    assert result["guide_every"] == (QUICK.glimpse.ram.guide_every or 0)
    ram = FULL.glimpse.ram
    guided = glimpse.render({**metrics["glimpse"], "guided_steps": ram.guide_steps, "guide_every": ram.guide_every})
    assert f"its first {ram.guide_steps:,} steps guided" in guided
    assert f"after them one step in {ram.guide_every} guided too" in guided
    assert "one step in" not in glimpse.render({**metrics["glimpse"], "guided_steps": ram.guide_steps})
    assert 0 < FULL.glimpse.ram.guide_steps < FULL.glimpse.ram.steps  # the full tour's live RAM starts guided


def test_the_shipped_reference_ram_reads_the_tours_canvases_well() -> None:
    run = load_run(REFERENCE)
    assert run.config.task == "digits" and run.config.model == "ram"
    task = run.config.task_config
    assert (task.setting, str(task.size), str(task.distractors), task.source) == (
        TASK["setting"], TASK["size"], TASK["distractors"], TASK["source"])
    assert str(run.config.model_config.num_glimpses) == MODELS["ram"]["num_glimpses"]
    torch.manual_seed(0)
    tested = evaluate(run.model, run.task, run.task.eval_set(500, "test"))
    assert 1 - tested["accuracy"] < 0.1  # 6.4% of the 360 test canvases when shipped
