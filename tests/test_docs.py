"""Every Python example in the README and docs/ runs as written (in a fresh namespace, in a scratch folder).

A block that is not a whole program (a fragment of a class shown for its shape, or one that reads a run
folder a shell command above it makes) is listed in FRAGMENTS with the reason, so that a new example
runs here unless it says why it cannot.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENTS = {
    "docs/architecture.md#1": "a fragment: how a family registers, shown without its imports and body",
    "docs/training.md#1": "reads runs/lr-tf, which the attnlab train command above it writes",
}


def examples() -> list[tuple[str, str]]:
    """(page#n, code) for every ```python block, n counted from 1 on each page."""
    found = []
    for page in PAGES:
        blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
        found += [(f"{page.relative_to(ROOT)}#{n}", code) for n, code in enumerate(blocks, 1)]
    return found


EXAMPLES = examples()


def test_the_pages_have_examples_and_every_listed_fragment_is_still_there() -> None:
    names = {name for name, _ in EXAMPLES}
    assert len(names) >= 5
    assert set(FRAGMENTS) <= names, set(FRAGMENTS) - names


@pytest.mark.parametrize(
    ("name", "code"), [pytest.param(name, code, id=name) for name, code in EXAMPLES if name not in FRAGMENTS]
)
def test_the_example_runs(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # what an example writes (a figure) lands here
    exec(compile(code, name, "exec"), {"__name__": "__main__"})


def test_the_glimpse_seeds_tables_hold_what_the_results_files_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row `benchmarks/glimpse.py table` gathers from the committed results files stands in
    docs/glimpse.md as it prints it (bold aside): a seed's results file committed without its row, or a
    row left behind by a later seed, fails here."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its `import common`
    spec = importlib.util.spec_from_file_location("glimpse_benchmark", ROOT / "benchmarks" / "glimpse.py")
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    rows = benchmark.seeds_table(benchmark.seed_files()).splitlines()[2:]  # past the header
    page = (ROOT / "docs" / "glimpse.md").read_text().replace("**", "")
    assert len(rows) >= 20
    assert [row for row in rows if row not in page] == []
