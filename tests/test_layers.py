"""The layer contract: attnlab's packages import downward only.

Every `import` in src/attnlab, at module level or inside a function, is read from the source
(ast), and each one that names another attnlab package must point at a lower layer. Packages
that share a layer are independent: they may not import each other. docs/architecture.md shows
the same order with what lives where.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "attnlab"

# Top first. A unit is a top-level package or module of attnlab ("attnlab" is the package's own __init__).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),  # python -m attnlab
    ("cli",),  # the command line: nothing but __main__ imports it
    ("tour", "explorer"),  # the main job, and `attnlab serve`'s web explorer: top floor, independent of each other
    ("probes",),  # probes of pretrained and trained encoders, with their figures
    ("viz",),  # everything that draws; reads traces and runs
    ("train",),  # the one loop, run folders, compare
    ("tasks",),  # data, loss, metrics and rendering per task
    ("pretrained",),  # checkpoints of other projects loaded into attnlab's modules
    ("models",),  # composition of the mechanisms below; the family registry
    ("attention", "memory", "glimpse", "data"),  # mechanisms, and data that knows no model
    ("attnlab",),  # the package root re-exports the core
    ("core",),  # attend, scores, masks, trace: imports only torch
    ("config", "files", "progress"),  # typed configs, registries, YAML; output folders created or refused in one line; the progress bar
    ("spec", "errors"),  # the task/model contract and the error hierarchy
)


def unit_of(module: str) -> str:
    """'attnlab.models.registry' -> 'models'; 'attnlab' -> 'attnlab'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "attnlab"


def module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path, src: Path) -> list[tuple[str, int]]:
    """(imported attnlab module, line) for every import in a file, relative imports resolved."""
    here = module_name(path, src).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((module, node.lineno))
    return [(m, line) for m, line in found if m == "attnlab" or m.startswith("attnlab.")]


def violations(src: Path, layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """Every import that points up or sideways, as 'file:line: a -> b (why)'; units not in layers too."""
    rank = {unit: i for i, layer in enumerate(layers) for unit in layer}
    found = []
    for path in sorted(src.rglob("*.py")):
        here = unit_of(module_name(path, src))
        if here not in rank:
            found.append(f"{path.relative_to(src.parent)}: unit {here!r} is in no layer")
            continue
        for module, line in imports(path, src):
            there = unit_of(module)
            if there == here:
                continue
            where = f"{path.relative_to(src.parent)}:{line}: {here} -> {there}"
            if there not in rank:
                found.append(f"{where} (unit {there!r} is in no layer)")
            elif rank[there] < rank[here]:
                found.append(f"{where} (an upward import)")
            elif rank[there] == rank[here]:
                found.append(f"{where} (siblings in one layer are independent)")
    return found


def test_attnlab_imports_point_downward_only():
    assert violations(SRC, LAYERS) == []


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p, SRC)) for p in SRC.rglob("*.py")}
    listed = {unit for layer in LAYERS for unit in layer}
    assert units <= listed, f"place these in LAYERS: {sorted(units - listed)}"


@pytest.mark.parametrize(
    "code, expected",
    [
        ("from attnlab.train import train\n", "low/x.py:1: low -> train (an upward import)"),
        ("def f():\n    import attnlab.train.loop\n", "low/x.py:2: low -> train (an upward import)"),
        ("from attnlab import side\n", None),  # the root package sits below "low" here
        ("from attnlab.side import y\n", "low/x.py:1: low -> side (siblings in one layer are independent)"),
        ("from ..train import loop\n", "low/x.py:1: low -> train (an upward import)"),
        ("from .y import z\n", None),
    ],
)
def test_the_checker_finds_upward_and_sideways_imports(tmp_path, code, expected):
    src = tmp_path / "attnlab"
    for unit in ("low", "train", "side"):
        (src / unit).mkdir(parents=True)
        (src / unit / "__init__.py").write_text("")
    (src / "__init__.py").write_text("")
    (src / "low" / "x.py").write_text(code)
    found = violations(src, (("train",), ("low", "side"), ("attnlab",)))
    assert found == ([] if expected is None else [f"attnlab/{expected}"])
