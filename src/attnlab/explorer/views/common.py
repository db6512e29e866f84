"""What the view modules share: rounding tensors into JSON and reading the picked example."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from attnlab.explorer.discovery import ExplorerError
from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.tasks.base import Batch

DIGITS = 4  # decimals kept in the JSON: the page shows 3


def rounded(x: Tensor, digits: int = DIGITS) -> Any:
    """A tensor as nested lists of floats rounded to `digits` decimals."""
    scale = 10.0**digits
    return (torch.round(x.detach().double().cpu() * scale) / scale).tolist()  # float64: 0.1234, not 0.12340000271


def example_index(loaded: LoadedRun, params: Params) -> int:
    """?example=K, K in [0, number of test examples held)."""
    return params.integer("example", 0, 0, len(loaded.examples) - 1)


def picked(loaded: LoadedRun, params: Params) -> tuple[int, Batch, Tensor]:
    """The example index, that example as a batch of one, and its row."""
    k = example_index(loaded, params)
    batch, rows = loaded.pick(k)
    return k, batch, rows


def token_ids(names: list[str], text: str, field: str, width: int) -> list[int]:
    """Typed words -> token ids (each word a token name); unknown words or too many are a 400 naming them."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    words = text.split()
    if len(words) > width:
        raise ExplorerError(400, f"{field}: at most {width} tokens, got {len(words)}")
    unknown = [w for w in words if w not in index]
    if unknown:
        known = " ".join(n for n in names[1:13])
        raise ExplorerError(400, f"{field}: unknown token {unknown[0]!r} (tokens are e.g. {known})")
    return [index[w] for w in words]
