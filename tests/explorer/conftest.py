"""Tiny trained runs for the explorer's tests (trained once per session), and a live server over them.

Every explorer test runs in one pytest-xdist worker (group "explorer"), so the runs are trained
once, and one server serves every module (one browser per module).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.support import RUNS, TRAIN, Served


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (--dist loadgroup) every explorer test runs in one worker: the runs train once."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.xdist_group("explorer"))


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of tiny trained runs (RUNS), a broken run, a comparison of two of them."""
    from attnlab.train import compare, resolve, train

    root = tmp_path_factory.mktemp("explorer") / "runs"
    for name, sections in RUNS.items():
        train(resolve({**sections, "train": TRAIN}), root / name, progress=False)
    broken = root / "broken" / "half-written"
    broken.mkdir(parents=True)
    (broken / "config.yaml").write_text("kind: attnlab-run\ntask: {name: reverse\n")  # cut off mid-write
    rows = []
    for name in ("heads/reverse-transformer", "plain/lstm"):
        test = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()][-1]
        rows.append(
            {
                "model": RUNS[name]["model"]["name"],
                "setting": None,
                "seed": 0,
                "name": name,
                "step": test["step"],
                "seconds": test["seconds"],
                "parameters": test["parameters"],
                "best_val": test["best_val"],
                "stopped_early": False,
                "test": {"accuracy": test["accuracy"]},
            }
        )
    out = root / "compare-reverse"
    out.mkdir()
    summary = compare.summarise(rows, "accuracy")
    compare.write_results(out, rows, summary, task="reverse", metric="accuracy", sweep=None, command="test")
    from attnlab.viz.curves import draw_results

    draw_results(out)
    return root


@pytest.fixture(scope="session")
def served(runs_root: Path) -> Iterator[Served]:
    server = Served([runs_root])
    yield server
    server.stop()
