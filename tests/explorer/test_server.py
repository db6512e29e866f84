"""attnlab.explorer.server and discovery without a running server: loopback by default, the warning
on any other host, the default folders, labels and ids, and what discovery skips."""

from __future__ import annotations

import pytest
import uvicorn

from attnlab.explorer import ExplorerError, default_roots, make_roots, serve
from attnlab.explorer.discovery import check_id, discover, run_summary


@pytest.fixture
def ran(monkeypatch):
    """serve() up to uvicorn.run, whose arguments are recorded instead."""
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    return calls


def test_serve_binds_loopback_by_default_and_warns_for_any_other_host(ran, tmp_path, capsys):
    serve([tmp_path])
    assert ran[-1]["host"] == "127.0.0.1" and "warning" not in capsys.readouterr().err
    serve([tmp_path], host="0.0.0.0", port=8123)
    assert (ran[-1]["host"], ran[-1]["port"]) == ("0.0.0.0", 8123)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: listening on 0.0.0.0, not loopback" in err


def test_default_roots_are_runs_and_tour_when_present(tmp_path):
    assert default_roots(tmp_path) == []
    (tmp_path / "tour").mkdir()
    assert default_roots(tmp_path) == [tmp_path / "tour"]
    (tmp_path / "runs").mkdir()
    assert default_roots(tmp_path) == [tmp_path / "runs", tmp_path / "tour"]


def test_roots_get_unique_labels_and_a_missing_one_is_an_error(tmp_path):
    (tmp_path / "a" / "runs").mkdir(parents=True)
    (tmp_path / "b" / "runs").mkdir(parents=True)
    roots = make_roots([tmp_path / "a" / "runs", tmp_path / "b" / "runs"])
    assert [r.label for r in roots] == ["runs", "runs-2"]
    with pytest.raises(ExplorerError, match="no such folder"):
        make_roots([tmp_path / "nope"])


def test_discovery_finds_runs_comparisons_and_tours_and_skips_hidden_folders(tmp_path):
    for folder in ("x/run1", "x/run1/viz/inner", ".hidden/run2", "cmp"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "x/run1/config.yaml").write_text("kind: attnlab-run\n")
    (tmp_path / "x/run1/viz/inner/config.yaml").write_text("kind: attnlab-run\n")  # inside a run: not searched
    (tmp_path / ".hidden/run2/config.yaml").write_text("kind: attnlab-run\n")
    (tmp_path / "cmp/results.json").write_text("{}")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "report.html").write_text("")
    found = discover(make_roots([tmp_path]))
    label = tmp_path.name
    assert list(found.runs) == [f"{label}/x/run1"]
    assert list(found.compares) == [f"{label}/cmp"] and list(found.tours) == [label]


@pytest.mark.parametrize("value", ["../x", "a/../b", "/etc", "a\\..\\b", "a\x00b"])
def test_ids_with_parent_or_absolute_parts_are_refused(value):
    with pytest.raises(ExplorerError, match="not allowed") as err:
        check_id("id", value)
    assert err.value.status == 400


def test_a_summary_of_a_foreign_or_half_written_folder_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("kind: something-else\n")
    assert "not an attnlab run config" in run_summary(tmp_path)["error"]
    (tmp_path / "config.yaml").write_text("kind: attnlab-run\ntask: {name: reverse}\nmodel: {name: lstm}\n")
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "split": "val", "accuracy": 0.5}\n{oops\n{"step": 4, "spl')
    summary = run_summary(tmp_path)
    assert summary["task"] == "reverse" and "line 2 is not JSON" in summary["error"]
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "split": "val", "accuracy": 0.5}\n{"step": 4, "spl')
    assert "no model.safetensors yet" in run_summary(tmp_path)["error"]  # a record being written is not an error
