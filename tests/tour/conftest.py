"""One quick tour for every test here: the sections' tests rerun their section into its folder,
which reuses the runs it trained (as a second `attnlab tour --quick` into the same folder would)."""

import json
from pathlib import Path

import pytest

from attnlab.tour import run_tour


@pytest.fixture(scope="session")
def quick_tour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A finished quick tour (seed 0): its folder, and its metrics.json as the tour wrote it."""
    out = tmp_path_factory.mktemp("tour")
    run_tour(out, quick=True)
    return out, json.loads((out / "metrics.json").read_text())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (--dist loadgroup) every tour test runs in one worker, so the quick tour runs once."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.xdist_group("tour"))
