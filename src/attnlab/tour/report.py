"""The tour's report: one page template, and the helpers every section writes its fragment with.

A section's prose is a trusted template; every value that comes from results goes through
`fill`, `paragraph`, `table` or `images` here, which escape it, so no section escapes on its own.

    paragraph("Test accuracy {accuracy:.1%} in <i>{steps}</i> steps.", accuracy=0.5, steps=4)
    table(["model", "error"], [["ram", "12.0%"]])
    images(["babi/viz/hops-example0.png"])
"""

from __future__ import annotations

import html
import string
from collections.abc import Iterable, Sequence
from typing import Any

PAGE = string.Template("""<!doctype html><html><head><meta charset="utf-8"><title>attnlab tour</title>
<style>body{font-family:sans-serif;max-width:64em;margin:2em auto}td,th{padding:2px 8px;text-align:right}
img{max-width:100%}</style></head><body><h1>attnlab tour</h1>
$intro
$sections
</body></html>
""")

INTRO = (
    "Everything here was trained on generated data in this run ({seconds:.0f} s on this machine); every "
    "run folder under <code>runs/</code> can be reopened with <code>attnlab eval</code> and "
    "<code>attnlab viz</code>."
)


class _Escaping(string.Formatter):
    """str.format that escapes each formatted field and nothing of the template around it."""

    def format_field(self, value: Any, format_spec: str) -> str:
        return html.escape(super().format_field(value, format_spec))


def fill(template: str, **values: Any) -> str:
    """template.format(**values), each field escaped after formatting; the template's markup is kept."""
    return _Escaping().vformat(template, (), values)


def paragraph(template: str, **values: Any) -> str:
    """<p>fill(template, **values)</p>."""
    return f"<p>{fill(template, **values)}</p>\n"


def table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A table with one header row; every cell is written with str() and escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>\n"


def images(paths: Iterable[str], alt: str | None = None) -> str:
    """An <img> per path (relative to report.html); alt text is the path unless given."""
    return "".join(f'<img src="{html.escape(p)}" alt="{html.escape(p if alt is None else alt)}">' for p in paths) + "\n"


def section(name: str, title: str, fragment: str) -> str:
    """One section of the page: its id, its title as a heading, then its fragment."""
    return f'<section id="{html.escape(name)}"><h2>{html.escape(title)}</h2>\n{fragment}</section>\n'


def page(sections: Sequence[str], *, seconds: float) -> str:
    """The whole report: the template filled with the run's time and the sections in order."""
    return PAGE.substitute(intro=paragraph(INTRO, seconds=seconds), sections="".join(sections))
