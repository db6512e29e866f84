"""attnlab.tour: the quick tour writes metrics.json and a report whose images exist; the report
can be written again from metrics.json alone."""

import dataclasses
import json
import re
from pathlib import Path

import pytest

from attnlab.errors import RunError
from attnlab.tour import LONGEST_FIRST, QUICK, SECTIONS, core, render_report, run_sections

HEADINGS = (
    "One attention core",
    "growing distance",
    "reverse a sequence",
    "learns to copy",
    "Attention between two sentences",
    "A memory network reads a story",
    "Memory that is written as well as read",
    "Glimpses: attention that moves the eye",
    "each digit word looks at its digit",
    "Self-attention on real language",
)


def test_sections_have_distinct_names_in_report_order() -> None:
    names = [s.NAME for s in SECTIONS]
    assert names == [
        "core",
        "families",
        "copy",
        "translation",
        "babi",
        "machines",
        "glimpse",
        "captioning",
        "pretrained",
    ]
    assert all(s.TITLE and callable(s.run) and callable(s.render) for s in SECTIONS)


def test_lanes_take_every_section_longest_first() -> None:
    assert sorted(LONGEST_FIRST) == sorted(s.NAME for s in SECTIONS)


def test_sections_in_lanes_give_what_they_give_one_after_another(tmp_path: Path) -> None:
    lanes = dataclasses.replace(QUICK, lanes=2)
    apart = run_sections(["core"], tmp_path / "lanes", lanes, 0)  # in a spawned process with a share of the cores
    together = run_sections(["core"], tmp_path / "here", QUICK, 0)
    assert list(apart) == ["core"] and apart["core"][0] == together["core"][0]
    assert apart["core"][1] >= 0


def test_quick_tour_writes_a_report_whose_images_exist(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    out = out
    page = (out / "report.html").read_text()
    for heading in HEADINGS:
        assert heading in page
    for section in SECTIONS:
        assert f'<section id="{section.NAME}">' in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 6
    for src in images:
        assert (out / src).stat().st_size > 1000, src
    metrics = metrics
    assert set(metrics) == {*(s.NAME for s in SECTIONS), "seconds", "section_seconds"}
    assert list(metrics["section_seconds"]) == [s.NAME for s in SECTIONS]
    assert sum(metrics["section_seconds"].values()) <= metrics["seconds"] + 1
    assert {s["model"] for s in metrics["families"]["long_range"]["summary"]} == {
        "mlp",
        "cnn",
        "rnn",
        "lstm",
        "transformer",
    }
    assert (out / "long_range" / "summary.md").is_file()
    assert (out / "long_range" / "plot.png").stat().st_size > 1000


def test_sections_run_again_into_the_same_folder_reuse_the_finished_runs(quick_tour: tuple[Path, dict]) -> None:
    out, metrics = quick_tour
    weights = next((out / "copy" / "runs").iterdir()) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = run_sections(["copy", "babi"], out, QUICK, 0)  # what a second tour does, section by section
    assert weights.stat().st_mtime_ns == stamp
    for name in ("copy", "babi"):  # as metrics.json holds them (JSON: the task numbers become strings)
        assert json.loads(json.dumps(again[name][0])) == metrics[name]


def test_render_report_writes_the_same_page_from_metrics_json_alone(quick_tour: tuple[Path, dict]) -> None:
    out, _ = quick_tour
    path = out / "report.html"
    page = path.read_text()
    path.unlink()
    assert render_report(out) == path
    assert path.read_text() == page


def test_render_report_renders_the_sections_found_and_needs_metrics(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"no metrics\.json"):
        render_report(tmp_path)
    result = core.run(tmp_path, QUICK, 0)
    (tmp_path / "metrics.json").write_text(json.dumps({"core": result, "seconds": 1.0}))
    page = render_report(tmp_path).read_text()
    assert '<section id="core">' in page and "One attention core" in page
    assert '<section id="families">' not in page and "(1 s on this machine)" in page
