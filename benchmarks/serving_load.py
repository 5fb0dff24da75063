"""What the serving benchmarks share: request bodies, keep-alive clients, timings, worker memory.

Not a benchmark itself: ``bench_serving.py`` (latency and throughput), ``bench_serving_models.py``
(start-up and memory per model), ``bench_serving_reliability.py`` (soak, kill, fuzz) and
``bench_serving_profile.py`` (inside a JSON request; adaptive batching) import it. The server
itself is started with :func:`serving.local_server.running_server`, as the tests and ``make
demo`` start it. Clients are ``http.client`` keep-alive connections (the standard library's,
lighter than httpx) in threads of this process; they share the machine with the server.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BATCH = 512
JSON = "application/json"
NPY = "application/octet-stream"


def port_of(url: str) -> int:
    return int(urlparse(url).port or 80)


def request(
    port: int, method: str, path: str, body: bytes | None = None, ctype: str = "", timeout=60
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, {"content-type": ctype} if ctype else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def ready(port: int) -> bool:
    try:
        return request(port, "GET", "/readyz", timeout=2)[0] == 200
    except OSError:
        return False


def workers(arbiter: int) -> list[psutil.Process]:
    """The BentoML worker processes under the arbiter (the service runs in these)."""
    found = []
    for p in psutil.Process(arbiter).children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a killed worker may linger as a zombie
            if p.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker" in " ".join(
                p.cmdline()
            ):
                found.append(p)
    return found


def rss_mb(arbiter: int) -> float:
    """Resident memory of the service's workers together, MB."""
    return sum(p.memory_info().rss for p in workers(arbiter)) / 2**20


def microstructures(n: int, seed: int = 0, side: int = 32) -> np.ndarray:
    """``n`` random E maps ``[n, 1, side, side]`` MPa, fiber fraction about 0.35."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, 1, side, side)) < 0.35, 85000.0, 3000.0).astype(np.float32)


def json_body(e: np.ndarray, field: str = "E", **extra: object) -> bytes:
    data = e if field == "E" else (e > 10000).astype(int)
    return json.dumps({field: data.tolist(), **extra}).encode()


def npy_body(e: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, e)
    return buf.getvalue()


def served(port: int, path: str, body: bytes | None, ctype: str) -> bool:
    """Whether the server answers this request with 200 (a row it cannot serve prints —)."""
    return request(port, "GET" if body is None else "POST", path, body, ctype)[0] == 200


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after two warm-up calls, in ms."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def summary(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 in ms, and requests/s of back-to-back requests, of request times (s)."""
    ms = np.asarray(seconds) * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "rps": len(ms) / ms.sum() * 1e3,
    }


def load(port: int, path: str, body: bytes | None, ctype: str, requests: int, clients: int) -> dict:
    """``requests`` POSTs (GETs without a body) over ``clients`` keep-alive connections ->
    p50/p99 ms, requests/s."""
    method = "GET" if body is None else "POST"
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def run(count: int) -> list[float]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"content-type": ctype} if ctype else {}
        times = []
        try:
            for _ in range(count):
                t0 = time.perf_counter()
                conn.request(method, path, body, headers)
                response = conn.getresponse()
                response.read()
                times.append(time.perf_counter() - t0)
                if response.status != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status}")
        finally:
            conn.close()
        return times

    run(min(5, requests))  # warm: ORT, the connection, the code paths
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = [t for part in pool.map(run, per_client) for t in part]
    wall = time.perf_counter() - start
    ms = np.asarray(times) * 1e3
    return {"p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99), "rps": requests / wall}


Case = tuple[str, str, bytes | None, str]  # row name, path, body (None: GET), content type


def interleaved(port: int, cases: list[Case], requests: int, warm: int = 5) -> dict[str, dict]:
    """One client sends every case once in turn, ``requests`` rounds after ``warm`` rounds: the
    machine's load drifts, so the rows see the same conditions. -> row name -> p50/p99, req/s."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times: dict[str, list[float]] = {name: [] for name, *_ in cases}
    try:
        for round_ in range(requests + warm):
            for name, path, body, ctype in cases:
                headers = {"content-type": ctype} if ctype else {}
                t0 = time.perf_counter()
                conn.request("GET" if body is None else "POST", path, body, headers)
                response = conn.getresponse()
                response.read()
                if round_ >= warm:
                    times[name].append(time.perf_counter() - t0)
                if response.status != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status}")
    finally:
        conn.close()
    return {name: summary(values) for name, values in times.items()}
