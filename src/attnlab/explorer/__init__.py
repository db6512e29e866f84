"""The explorer: `attnlab serve`, a local web page to look inside every trained run.

    discovery.py  run, comparison and tour folders under the roots; ids; safe file paths
    loaded.py     runs kept loaded (bounded LRU), one lock per model around every traced pass
    params.py     checked, bounded query parameters
    views/        one module per view: heads, translation, hops, machine, glimpse
    live.py       the pretrained encoder on a typed sentence, and the pronoun probe's head
    app.py        the Starlette app: the page, static files, the JSON API (its endpoints listed there)
    server.py     uvicorn on 127.0.0.1 by default
    static/       index.html, explorer.js, explorer.css: the page, drawn in SVG, nothing fetched from outside

The command line and nothing else imports this package.
"""

from attnlab.explorer.app import create_app
from attnlab.explorer.discovery import ExplorerError, make_roots
from attnlab.explorer.server import default_roots, serve

__all__ = ["ExplorerError", "create_app", "default_roots", "make_roots", "serve"]
