"""The explorer's web app (Starlette, served by uvicorn): the page, its static files and the JSON API.

    GET /                      the index page (the same page draws /run/ID and /live)
    GET /api                   this list of endpoints, as JSON
    GET /api/runs              runs (task, family, parameters, final metrics, curve), comparisons, live status
    GET /api/run?id=ID         one run: its summary and its views (loads the model)
    GET /api/view?id=ID&view=V&example=K[&text=..][&question=..][&beam=B]   one view's data
    GET /api/file?path=P       a .png/.svg inside a runs folder (a comparison's plots)
    GET /api/live?text=S       the pretrained encoder's attention on one sentence
    GET /api/live/probe        the head the pronoun probe ranks first

Every fault is a 4xx JSON {"error": one line naming the field and what was wrong}: 400 bad
parameters, 403 outside the roots, 404 unknown ids, 413 too large, 422 a run folder that cannot
be rebuilt (its own page shows the line; the others keep working), 503 no pretrained encoder.
Model work runs in Starlette's thread pool (the handlers are plain functions).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from attnlab.errors import AttnlabError
from attnlab.explorer.discovery import (
    ExplorerError,
    Found,
    Root,
    Summaries,
    check_id,
    compare_summary,
    discover,
    resolve_file,
    tour_probe_head,
)
from attnlab.explorer.live import MAX_CHARS, Live
from attnlab.explorer.loaded import MAX_EXAMPLES, RunCache
from attnlab.explorer.params import Params
from attnlab.explorer.views import VIEWS, views_of

STATIC = Path(str(resources.files("attnlab.explorer") / "static"))
FOUND_TTL = 2.0  # seconds a discovery is reused before the roots are walked again

ENDPOINTS = {
    "/api/runs": {"params": {}, "returns": "roots, runs, compares, tours, live"},
    "/api/run": {"params": {"id": "run id"}, "returns": "summary, views, examples"},
    "/api/view": {
        "params": {
            "id": "run id",
            "view": f"one of {list(VIEWS)}",
            "example": f"0..{MAX_EXAMPLES - 1}",
            "text": "typed input (heads: token names; translation: a source sentence)",
            "question": "hops: a typed question",
            "beam": "translation and caption: beam size 2..8",
        },
        "returns": "the view's data (see attnlab.explorer.views)",
    },
    "/api/file": {"params": {"path": "LABEL/relative/path.png"}, "returns": "the file"},
    "/api/live": {"params": {"text": f"a sentence, at most {MAX_CHARS} characters"}, "returns": "tokens, layers"},
    "/api/live/probe": {"params": {}, "returns": "best_head [layer, head], source"},
}


class Explorer:
    """The state behind the app: the roots, what was found there, loaded runs and the live encoder."""

    def __init__(self, roots: list[Root], cache_size: int = 8):
        self.roots = roots
        self.runs = RunCache(cache_size)
        self.summaries = Summaries()
        self.live = Live()
        self._found: tuple[float, Found] | None = None
        self._found_lock = threading.Lock()

    def found(self) -> Found:
        with self._found_lock:
            if self._found is None or time.monotonic() - self._found[0] > FOUND_TTL:
                self._found = (time.monotonic(), discover(self.roots))
            return self._found[1]

    def folder(self, run_id: str | None) -> tuple[str, Path]:
        run_id = check_id("id", run_id)
        folder = self.found().runs.get(run_id)
        if folder is None:
            raise ExplorerError(404, f"id: no run {run_id!r} under the runs folders (see /api/runs)")
        return run_id, folder

    # -- handlers: each returns JSON-able data or raises ExplorerError ----------------------

    def index(self, params: Params) -> dict[str, Any]:
        found = self.found()
        return {
            "roots": [{"label": r.label, "path": str(r.path)} for r in self.roots],
            "runs": [self.summaries.get(i, f) for i, f in found.runs.items()],
            "compares": [compare_summary(f, i) for i, f in found.compares.items()],
            "tours": list(found.tours),
            "live": self.live.status(),
        }

    def run(self, params: Params) -> dict[str, Any]:
        run_id, folder = self.folder(params.values.get("id"))
        summary = self.summaries.get(run_id, folder)
        try:
            loaded = self.runs.get(folder)
        except AttnlabError as err:
            raise ExplorerError(422, f"run {run_id}: {err}") from None
        views = views_of(loaded)
        return {
            **summary,
            "examples": len(loaded.examples),
            "kinds": loaded.kinds,
            "views": [{"name": v.name, "title": v.title, "typed": v.typed} for v in views],
            "note": None if views else f"model {summary['family']!r} records no attention: nothing to look inside",
        }

    def view(self, params: Params) -> dict[str, Any]:
        run_id, folder = self.folder(params.values.get("id"))
        name = params.values.get("view", "")
        if name not in VIEWS:
            raise ExplorerError(400, f"view: must be one of {list(VIEWS)}, got {name[:40]!r}")
        try:
            loaded = self.runs.get(folder)
        except AttnlabError as err:
            raise ExplorerError(422, f"run {run_id}: {err}") from None
        view = VIEWS[name]
        extra = [k for k in params.values if k not in ("id", "view", *view.params)]
        if extra:
            raise ExplorerError(
                400, f"{extra[0][:40]}: unknown parameter for view {name!r} (it takes {list(view.params)})"
            )
        if not view.applies(loaded):
            shown = [v.name for v in views_of(loaded)]
            raise ExplorerError(400, f"view: run {run_id!r} has no {name!r} view (it has {shown})")
        return {"id": run_id, **view.data(loaded, params)}

    def live_attend(self, params: Params) -> dict[str, Any]:
        text = params.text("text", limit=MAX_CHARS)
        if text is None:
            raise ExplorerError(400, "text: missing (give ?text=a sentence)")
        return self.live.attend(text)

    def live_probe(self, params: Params) -> dict[str, Any]:
        if not self.live.status()["available"]:
            raise ExplorerError(503, f"live: {self.live.status()['reason']}")
        return self.live.probe(tour_probe_head(self.found().tours))


KNOWN = {
    "index": set(),
    "run": {"id"},
    "view": {"id", "view", "example", "text", "question", "beam"},
    "live_attend": {"text"},
    "live_probe": set(),
    "file": {"path"},
}


def _params(request: Request, known: set[str]) -> Params:
    query = request.query_params
    unknown = [k for k in query if k not in known]
    if unknown:
        raise ExplorerError(400, f"{unknown[0][:40]}: unknown parameter (known: {sorted(known)})")
    for key in query:
        if len(query.getlist(key)) > 1:
            raise ExplorerError(400, f"{key}: given more than once")
    return Params(dict(query))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.replace("\n", " ")}, status_code=status)


def _json(explorer: Explorer, name: str) -> Callable[[Request], Response]:
    handler = getattr(explorer, name)

    def endpoint(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        try:
            return JSONResponse(handler(_params(request, KNOWN[name])))
        except ExplorerError as err:
            return _error(err.status, str(err))
        except AttnlabError as err:  # a run whose files load but do not make sense
            return _error(422, str(err))
        except Exception as err:  # a defect: one line to the client, the server keeps serving
            first = (str(err).strip().splitlines() or [""])[0]
            return _error(500, f"internal error: {type(err).__name__}: {first}"[:300])

    return endpoint


def create_app(roots: list[Root], *, cache_size: int = 8) -> Starlette:
    """The explorer app over the given roots (attnlab.explorer.discovery.make_roots)."""
    explorer = Explorer(roots, cache_size)
    page = STATIC / "index.html"

    def index_page(request: Request) -> Response:
        return FileResponse(page, media_type="text/html")

    def api(request: Request) -> Response:
        return JSONResponse({"endpoints": ENDPOINTS})

    def file(request: Request) -> Response:
        try:
            return FileResponse(resolve_file(explorer.roots, _params(request, KNOWN["file"]).values.get("path")))
        except ExplorerError as err:
            return _error(err.status, str(err))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return _error(status, f"{request.url.path}: {detail}")

    async def crashed(request: Request, exc: Exception) -> Response:
        first = (str(exc).strip().splitlines() or [""])[0]
        return _error(500, f"internal error: {type(exc).__name__}: {first}"[:300])

    routes = [
        Route("/", index_page),
        Route("/run/{run_id:path}", index_page),
        Route("/live", index_page),
        Route("/api", api),
        Route("/api/runs", _json(explorer, "index")),
        Route("/api/run", _json(explorer, "run")),
        Route("/api/view", _json(explorer, "view")),
        Route("/api/live", _json(explorer, "live_attend")),
        Route("/api/live/probe", _json(explorer, "live_probe")),
        Route("/api/file", file),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: crashed})
    app.state.explorer = explorer
    return app
