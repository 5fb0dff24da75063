"""Load test of the REST service on loopback: p50/p99 latency and requests/s (fixed counts).

Starts ``microstrain serve`` on a free port, sends a fixed number of one-sample requests from 1
and from 16 concurrent clients, prints a table and stops the server. ``--batching`` also starts
benchmarks/serving_batching_probe.py and compares BentoML's adaptive batching with a plain
endpoint under the same loads.

    .venv/bin/python benchmarks/bench_serving.py [--model DIR] [--requests 300] [--batching]

Without ``models/default`` it builds a stand-in ONNX graph (6 convolutions of 16 channels, no
torch) so the numbers still mean something; the table says which model ran.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from microstrain.hardware import usable_cores  # noqa: E402
from microstrain.surrogate import default_model_dir  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise SystemExit("server did not become ready in 120 s")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def load(url: str, body: bytes, requests: int, clients: int) -> dict[str, float]:
    """``requests`` POSTs split over ``clients`` threads, each with its own keep-alive client."""
    headers = {"content-type": "application/json"}
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def run(count: int) -> list[float]:
        latencies = []
        with httpx.Client(timeout=60) as client:
            for _ in range(count):
                t0 = time.perf_counter()
                r = client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"{url}: HTTP {r.status_code} {r.text[:200]}")
        return latencies

    with httpx.Client() as warm:  # a few requests first: ORT and the connection are warm
        for _ in range(5):
            warm.post(url, content=body, headers=headers)
    start_time = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(run, per_client) for x in part]
    wall = time.perf_counter() - start_time
    ms = np.asarray(latencies) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "rps": requests / wall,
    }


def sample_body(field: str = "E") -> bytes:
    rng = np.random.default_rng(0)
    e = np.where(rng.random((1, 1, 32, 32)) < 0.35, 85000.0, 3000.0)  # [1, 1, 32, 32]
    return json.dumps({field: e.tolist()}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--clients", default="1,16", help="comma-separated client counts")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batching", action="store_true", help="also compare adaptive batching")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model = args.model or default_model_dir()
    label = str(model)
    if not (model / "model.onnx").is_file():
        sys.path.insert(0, str(REPO / "tests"))
        from support.models import make_model_dir

        model = make_model_dir(tmp / "standin", extra_convs=6)
        label = "stand-in (6 conv layers x 16 ch, no models/default yet)"
    env = {
        **os.environ,
        "MICROSTRAIN_MODEL": str(model.resolve()),
        "MICROSTRAIN_STATE_DIR": str(tmp / "state"),
        "MICROSTRAIN_WORKERS": str(args.workers),
    }
    print(f"model: {label}; {usable_cores()} cores; workers {args.workers}; loopback HTTP")
    print(f"{args.requests} one-sample requests per row; server and clients share the machine\n")
    rows = []
    port = free_port()
    cmd = [sys.executable, "-m", "microstrain_cli", "serve", "--port", str(port)]
    cmd += ["--workers", str(args.workers)]
    proc = start(cmd, env, port, tmp / "serve.log")
    try:
        for field in ("E", "fiber_mask"):
            body = sample_body(field)
            if field == "fiber_mask":
                body = body.replace(b"85000.0", b"1").replace(b"3000.0", b"0")
            for c in clients:
                stats = load(f"http://127.0.0.1:{port}/predict", body, args.requests, c)
                rows.append((f"/predict ({field})", c, stats))
    finally:
        stop(proc)
    if args.batching:
        port = free_port()
        cmd = [sys.executable, "-m", "bentoml", "serve", "serving_batching_probe:BatchingProbe"]
        cmd += ["--port", str(port), "--host", "127.0.0.1", "--working-dir", "benchmarks"]
        proc = start(cmd, env, port, tmp / "probe.log")
        try:
            body = sample_body("E")
            for endpoint in ("plain", "batched"):
                for c in clients:
                    url = f"http://127.0.0.1:{port}/{endpoint}"
                    rows.append((f"probe /{endpoint}", c, load(url, body, args.requests, c)))
        finally:
            stop(proc)

    print(f"{'endpoint':24s} {'clients':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s}")
    for name, c, s in rows:
        print(f"{name:24s} {c:7d} {s['p50']:8.2f} {s['p99']:8.2f} {s['rps']:8.1f}")


if __name__ == "__main__":
    main()
