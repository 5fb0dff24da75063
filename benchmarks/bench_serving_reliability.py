"""Reliability of the REST service on loopback: a soak, killed workers, fuzzing every route.

Starts ``microstrain serve`` (:mod:`serving.local_server`) on a free port with the given models
and runs what is asked:

- ``--soak SECONDS``: moderate mixed load (4 clients, each a request then a 20 ms pause: one
  sample, eight with quantities, 64 as .npy, a 422), the workers' memory every 30 s after a
  minute of warm-up, and the statuses;
- ``--kill``: SIGKILL a worker three times; seconds until ``/predict`` answers again and until
  the worker count is whole again;
- ``--fuzz EXAMPLES``: schemathesis on every operation of ``/docs.json``; status codes per
  operation (no 5xx allowed).

FE checks under load (a flood of ``/verify``, a killed FE worker): ``bench_verify.py``.

    .venv/bin/python benchmarks/bench_serving_reliability.py --soak 600 | --kill | --fuzz 200
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

from serving_load import (
    REPO,
    json_body,
    microstructures,
    npy_body,
    port_of,
    ready,
    request,
    rss_mb,
    workers,
)

from microstrain.hardware import cpu_description
from serving.local_server import fuzz, running_server
from serving.registry import discover


def soak(port: int, arbiter: int, seconds: float, warmup: float = 60.0) -> None:
    """Moderate mixed load: 4 clients, each a request then a 20 ms pause. The worker's memory
    is sampled every 30 s; "before" is taken after ``warmup`` seconds of the same load (thread
    pools and onnxruntime's arena reach their working size), "after" at the end."""
    bodies = [
        ("/predict", json_body(microstructures(1)), "application/json"),
        (
            "/predict",
            json.dumps({"E": microstructures(8).tolist(), "quantities": True}).encode(),
            "application/json",
        ),
        ("/predict_npy", npy_body(microstructures(64)), "application/octet-stream"),
        ("/predict", b'{"E": [[1]]}', "application/json"),  # a 422, also part of real traffic
    ]
    start = time.monotonic()
    end = start + warmup + seconds
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        k = i
        while time.monotonic() < end:
            path, body, ctype = bodies[k % len(bodies)]
            k += 1
            conn.request("POST", path, body, {"content-type": ctype})
            response = conn.getresponse()
            response.read()
            if time.monotonic() > start + warmup:
                with lock:
                    counts[response.status] = counts.get(response.status, 0) + 1
            time.sleep(0.02)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    samples = []
    while time.monotonic() < end:
        time.sleep(min(30.0, max(0.0, end - time.monotonic())))
        samples.append((time.monotonic() - start, rss_mb(arbiter)))
    for t in threads:
        t.join()
    measured = [(t, m) for t, m in samples if t >= warmup - 1]
    before, after = measured[0][1], rss_mb(arbiter)
    print(
        f"soak {seconds:.0f} s after {warmup:.0f} s of warm-up: {sum(counts.values())} "
        f"requests, statuses {counts}"
    )
    print("worker RSS MB: " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in samples))
    print(
        f"worker RSS after warm-up {before:.0f} MB, at the end {after:.0f} MB "
        f"({after / before - 1:+.1%})"
    )


def kill_worker(port: int, arbiter: int, rounds: int = 3) -> None:
    """SIGKILL a worker; seconds until /predict answers again (BentoML starts a new one; with
    more workers the others answer meanwhile), and until the worker count is whole again."""
    body = json_body(microstructures(1))
    count = len(workers(arbiter))
    for i in range(rounds):
        victim = workers(arbiter)[0]
        os.kill(victim.pid, signal.SIGKILL)
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(port, "POST", "/predict", body, "application/json", 5)[0] == 200:
                    break
            time.sleep(0.05)
        answering = time.monotonic() - t0
        while len([p for p in workers(arbiter) if p.pid != victim.pid]) < count:
            time.sleep(0.05)
        while not ready(port):
            time.sleep(0.05)
        print(
            f"kill -9 #{i + 1} of worker {victim.pid}: /predict answered again after "
            f"{answering:.1f} s; {count} worker(s) again after {time.monotonic() - t0:.1f} s"
        )


def fuzz_routes(url: str, examples: int, workdir: Path) -> None:
    """schemathesis on every operation of /docs.json; status codes per operation."""
    run = fuzz(url, workdir, examples, seed=1)
    print(f"schemathesis (exit {run.returncode}), {examples} examples per operation:")
    for label, codes in sorted(run.statuses.items()):
        per = {code: codes.count(code) for code in dict.fromkeys(codes)}
        fives = sum(v for k, v in per.items() if k >= 500)
        print(f"  {label:22s} {len(codes):5d} requests, 5xx: {fives}, statuses {per}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=None, help="repeatable")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--soak", type=float, default=0, help="seconds of moderate load")
    parser.add_argument("--kill", action="store_true", help="SIGKILL a worker 3 times")
    parser.add_argument("--fuzz", type=int, default=0, help="schemathesis examples per route")
    args = parser.parse_args()
    if not (args.soak or args.kill or args.fuzz):
        parser.error("give --soak SECONDS, --kill or --fuzz EXAMPLES")
    models = [m.resolve() for m in (args.model or discover(REPO / "models"))]
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-reliability-"))
    print(f"{cpu_description()}; {args.workers} worker(s); models {[m.name for m in models]}")
    env = {"MICROSTRAIN_STATE_DIR": str(tmp / "state")}
    extra = ["--workers", str(args.workers)]
    with running_server(models, env, tmp / "serve.log", extra_args=extra) as local:
        port, arbiter = port_of(local.url), local.process.pid
        if args.soak:
            soak(port, arbiter, args.soak)
        if args.fuzz:
            fuzz_routes(local.url, args.fuzz, tmp)
        if args.kill:
            kill_worker(port, arbiter)


if __name__ == "__main__":
    main()
