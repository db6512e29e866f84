"""The run views: one module per view, each a `View` that says which runs it applies to and what data it serves.

    "heads"        transformer self- and cross-attention: layers x heads   (kinds self, cross, hopfield; not captions)
    "translation"  a typed source: alignment matrices of greedy and beam outputs   (translation runs)
    "hops"         story sentences x hops of a memory network               (kind memory)
    "machine"      read and write weightings over slots x time, memory contents (kinds read, write)
    "glimpse"      the glimpse path over the image, one square per scale    (kind glimpse)
    "spatial"      each head's weights over the feature map, laid on the image (kind spatial)
    "caption"      an image, its greedy (and beam) caption, each word's weights laid on the image (caption runs)

Adding a view is one module here with a `VIEW` and its name in `VIEWS`: the API serves
/api/view?view=NAME and the page draws it with the function of the same name in explorer.js.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params


@dataclass(frozen=True)
class View:
    """One way of looking at a run."""

    name: str
    title: str
    applies: Callable[[LoadedRun], bool]  # whether a run has this view (from its trace's kinds or its task)
    data: Callable[[LoadedRun, Params], dict[str, Any]]  # the JSON the page draws; pure in (run, params)
    typed: str = ""  # what the user may type instead of picking an example ("" nothing)
    params: tuple[str, ...] = ("example",)  # the query parameters data reads, besides id and view


def _views() -> dict[str, View]:
    from attnlab.explorer.views import caption, glimpse, heads, hops, machine, spatial, translation

    return {v.VIEW.name: v.VIEW for v in (heads, translation, hops, machine, glimpse, spatial, caption)}


VIEWS: dict[str, View] = _views()


def views_of(loaded: LoadedRun) -> list[View]:
    """The views that apply to a loaded run, in VIEWS order."""
    return [v for v in VIEWS.values() if v.applies(loaded)]
