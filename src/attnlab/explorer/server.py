"""Running the explorer: uvicorn serving `create_app` on loopback unless told otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

from attnlab.explorer.app import create_app
from attnlab.explorer.discovery import make_roots

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def default_roots(cwd: Path | None = None) -> list[Path]:
    """runs/ and tour/ of the working folder, those that exist."""
    here = Path.cwd() if cwd is None else cwd
    return [p for p in (here / "runs", here / "tour") if p.is_dir()]


def serve(roots: list[Path], *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the explorer over roots until interrupted; warns when host is not loopback.

    Raises:
        ExplorerError: a root is not a folder.
    """
    import torch
    import uvicorn

    app = create_app(make_roots(roots))
    if host not in LOOPBACK:
        print(
            f"attnlab serve: warning: listening on {host}, not loopback: anyone who can reach this machine "
            "can read these runs and use its CPU",
            file=sys.stderr,
        )
    torch.set_num_threads(1)  # tiny models: requests in parallel beat threads inside one forward pass
    shown = "[" + host + "]" if ":" in host else host
    print(f"attnlab serve: http://{shown}:{port}/ ({', '.join(str(r) for r in roots)})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
