"""What the explorer's tests share: the tiny runs they train, and a live server with a JSON client."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

TRAIN = {"steps": 4, "eval_every": 2, "eval_size": 8, "batch_size": 8, "device": "cpu"}
RUNS: dict[str, dict[str, Any]] = {  # folder under the root -> the run's task and model sections
    "heads/reverse-transformer": {
        "task": {"name": "reverse", "length": 4},
        "model": {"name": "transformer", "num_layers": 2, "embed_dim": 16, "num_heads": 2, "ff_dim": 32},
    },
    "translation/encdec": {
        "task": {"name": "translate", "corpus": "toy", "toy_pairs": 200, "max_len": 12},
        "model": {"name": "encdec", "embed_dim": 16, "num_heads": 2, "ff_dim": 32, "num_layers": 1},
    },
    "babi/memn2n": {
        "task": {"name": "babi", "tasks": "1,2", "generated_stories": 10, "memory_size": 8},
        "model": {"name": "memn2n", "embed_dim": 8, "hops": 2},
    },
    "machines/ntm": {
        "task": {"name": "ntm_copy", "max_length": 3},
        "model": {"name": "ntm", "controller_size": 8, "memory_size": 8, "word_size": 4},
    },
    "glimpse/ram": {
        "task": {"name": "digits", "source": "small", "setting": "translated", "size": 40},
        "model": {"name": "ram", "num_glimpses": 3, "glimpse_hidden": 8, "glimpse_dim": 8, "core_size": 8},
    },
    "glimpse/soft_attention": {
        "task": {"name": "digits", "source": "small", "setting": "translated", "size": 40},
        "model": {"name": "soft_attention", "embed_dim": 8, "num_heads": 2, "hidden_dim": 8},
    },
    "translation/seq2seq": {
        "task": {"name": "translate", "corpus": "toy", "toy_pairs": 200, "max_len": 12},
        "model": {"name": "seq2seq"},
    },
    "plain/lstm": {"task": {"name": "reverse", "length": 4}, "model": {"name": "lstm", "hidden_dim": 8}},
    "captioning/show_attend_tell": {
        "task": {"name": "caption", "scenes": 40},
        "model": {"name": "show_attend_tell", "embed_dim": 8, "hidden_dim": 8, "attn_dim": 8},
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A uvicorn server in a thread, and a JSON client for it."""

    def __init__(self, roots: list[Path]):
        import uvicorn

        from attnlab.explorer import create_app, make_roots

        self.app = create_app(make_roots(roots))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the explorer's server did not start")
            time.sleep(0.02)

    def get(self, route: str, /, **params: Any) -> tuple[int, Any]:
        """(status, JSON body) of GET path?params."""
        url = self.base + route + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                body = response.read()
                status = response.status
                kind = response.headers.get("content-type", "")
        except urllib.error.HTTPError as err:
            body, status, kind = err.read(), err.code, err.headers.get("content-type", "")
        return status, json.loads(body) if "json" in kind else body

    def ok(self, route: str, /, **params: Any) -> Any:
        status, body = self.get(route, **params)
        assert status == 200, body
        return body

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run_id(name: str) -> str:
    return f"runs/{name}"
