"""How fast `attnlab serve` answers: the index with 200 runs, a run view's data, a live sentence
through the pretrained encoder, and 200 concurrent requests from 20 clients.

    python benchmarks/explorer.py [--runs 200] [--repeats 20]

A tiny transformer is trained once into a temporary folder and its folder copied (config and
metrics copied, weights linked) into `--runs` run folders. The server is `attnlab serve` in its own
process on 127.0.0.1 (one torch thread per request, as it serves); the clients are threads here.
Times are wall-clock medians over `--repeats` requests, after one cold request each (reported
too). Memory is the server's resident set size (psutil) before and after each round of 200
concurrent requests. Writes benchmarks/results/explorer.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import torch

import common

SENTENCE_20 = "The animal didn't cross the busy old street because it was far too tired today."  # 20 word pieces with [CLS], [SEP]


def get(base: str, route: str, **params: Any) -> tuple[int, float]:
    """(status, seconds) of one GET."""
    url = base + route + ("?" + urllib.parse.urlencode(params) if params else "")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError:
        status = -1
    return status, time.perf_counter() - start


def timed(base: str, route: str, repeats: int, vary: str | None = None, **params: Any) -> dict[str, float]:
    """Cold (first) and warm median milliseconds of a request; `vary` names a parameter set to 0, 1, ..."""
    cold_status, cold = get(base, route, **params)
    times = []
    for k in range(repeats):
        extra = {vary: k % 16} if vary else {}
        status, seconds = get(base, route, **{**params, **extra})
        if status != 200 or cold_status != 200:
            raise RuntimeError(f"{route} {params}: status {status}")
        times.append(seconds)
    return {"cold_ms": round(cold * 1e3, 1), "median_ms": round(statistics.median(times) * 1e3, 1), "n": repeats}


def make_runs(folder: Path, count: int) -> str:
    """One tiny trained transformer and count - 1 copies of its folder; returns the first run's id."""
    from attnlab.train import resolve, train

    first = folder / "run-000"
    config = resolve(
        {
            "task": {"name": "reverse", "length": 8},
            "model": {"name": "transformer", "num_layers": 2, "embed_dim": 32, "num_heads": 4, "ff_dim": 64},
            "train": {"steps": 20, "eval_every": 5, "eval_size": 32, "batch_size": 16, "device": "cpu"},
        }
    )
    train(config, first, progress=False)
    for k in range(1, count):
        copy = folder / f"run-{k:03d}"
        copy.mkdir()
        for name in ("config.yaml", "metrics.jsonl"):
            shutil.copy(first / name, copy / name)
        (copy / "model.safetensors").symlink_to(first / "model.safetensors")
    return f"{folder.name}/run-000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "serve", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while get(base, "/api")[0] != 200:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(
                "the server did not start: " + (process.stderr.read().decode() if process.stderr else "")
            )
        time.sleep(0.1)
    return process, base


def concurrent_round(base: str, run: str, requests: int, clients: int, live: bool) -> dict[str, Any]:
    """requests GETs (index, run views, live sentences in turn) from `clients` threads; errors and time."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for k in range(requests):
        if k % 4 == 0:
            calls.append(("/api/runs", {}))
        elif k % 4 == 3 and live:
            calls.append(("/api/live", {"text": f"{SENTENCE_20} ({k})"}))
        else:
            calls.append(("/api/view", {"id": run, "view": "heads", "example": k % 32}))
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda call: get(base, call[0], **call[1]), calls))
    seconds = time.perf_counter() - start
    errors = sum(status != 200 for status, _ in answers)
    latencies = sorted(s for _, s in answers)
    return {
        "requests": requests,
        "clients": clients,
        "errors": errors,
        "seconds": round(seconds, 2),
        "median_ms": round(statistics.median(latencies) * 1e3, 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1e3, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, help="result file (default benchmarks/results/explorer.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
        run = make_runs(root, args.runs)
        process, base = start_server(root)
        server = psutil.Process(process.pid)
        try:
            status, _ = get(base, "/api/live", text="warm up")
            live = status == 200
            result: dict[str, Any] = {
                "runs": args.runs,
                "index_page_ms": timed(base, "/", args.repeats),
                "index_api_ms": timed(base, "/api/runs", args.repeats),
                "run_api_ms": timed(base, "/api/run", args.repeats, id=run),
                "view_api_ms": timed(base, "/api/view", args.repeats, vary="example", id=run, view="heads"),
            }
            if live:
                tokens = json.loads(
                    urllib.request.urlopen(f"{base}/api/live?text={urllib.parse.quote(SENTENCE_20)}").read()
                )
                result["live_tokens"] = len(tokens["tokens"])
                result["live_api_ms"] = timed(base, "/api/live", args.repeats, text=SENTENCE_20)
            rounds = []
            for _ in range(3):
                before = server.memory_info().rss
                stats = concurrent_round(base, run, 200, 20, live)
                after = server.memory_info().rss
                rounds.append(
                    {**stats, "rss_before_mb": round(before / 2**20, 1), "rss_after_mb": round(after / 2**20, 1)}
                )
            result["concurrent"] = rounds
        finally:
            process.terminate()
            process.wait(timeout=30)
    result["machine"] = common.machine(argv, server_threads=1, cpus_available=len(os.sched_getaffinity(0)))
    path = common.write_result(result, "explorer.json", args.out)
    print(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
