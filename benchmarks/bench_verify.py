"""FE checks (``POST /verify``) of a running service against their targets, in one run.

Starts ``microstrain serve`` on a free loopback port (the shipped ``models/default`` unless
``--model``; one service worker, one FE worker, 4 waiting: the defaults of a 2-core machine) and
measures, with its FE worker warm:

1. one-sample ``/verify``: p50 and p90 over ``--checks`` requests; target p50 ≤ 150 ms (goal
   100 ms), with the answer's own ``fe_seconds`` (the solve) and ``fe_overhead_seconds``;
2. eight-sample ``/verify``: p50 against 8 × the one-sample solve time + 100 ms, and the time
   beyond the check's own eight solves (its ``fe_seconds``), which solver noise does not move;
3. ``/predict`` (one sample) p50 idle and under a flood of 20 concurrent one-sample checks
   (target ≤ 2× idle; the statuses of the flood, no 5xx allowed);
4. SIGKILL of the FE worker during an eight-sample check: that check's status, and the time
   from the kill to the next check answered 200 (target ≤ 10 s).

Prints one table (markdown) with the CPU and the load average; the targets are checked as ratios
of numbers measured in this run.

    .venv/bin/python benchmarks/bench_verify.py [--model DIR] [--checks 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from microstrain.hardware import cpu_description  # noqa: E402
from serving.local_server import running_server  # noqa: E402

FLOOD = 20


def masks(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 32, 32)) < 0.4).astype(int).tolist()


def timed(client: httpx.Client, url: str, body: dict) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    answer = client.post(url, json=body)
    return time.perf_counter() - start, answer


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def fe_workers(server_pid: int) -> list[psutil.Process]:
    """The FE worker processes under the server process ``server_pid``."""
    children = psutil.Process(server_pid).children(recursive=True)
    return [c for c in children if "data_gen.fe_worker" in " ".join(c.cmdline())]


def one_sample(client: httpx.Client, url: str, checks: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"wall": [], "solve": [], "overhead": []}
    for i in range(checks):
        seconds, answer = timed(client, f"{url}/verify", {"fiber_mask": masks(1, i)[0]})
        assert answer.status_code == 200, answer.text[:300]
        body = answer.json()
        out["wall"].append(seconds)
        out["solve"].append(body["fe_seconds"])
        out["overhead"].append(body["fe_overhead_seconds"])
    return out


def predict_p50(client: httpx.Client, url: str, count: int) -> float:
    body = {"fiber_mask": masks(1, 99)[0]}
    times = []
    for _ in range(count):
        seconds, answer = timed(client, f"{url}/predict", body)
        assert answer.status_code == 200
        times.append(seconds)
    return statistics.median(times)


def flood(url: str) -> tuple[float, list[int], list[int]]:
    """/predict p50 while 20 one-sample checks arrive at once; statuses of both."""
    statuses: list[int] = []
    predict_times: list[float] = []
    predict_statuses: list[int] = []
    done = threading.Event()

    def check(i: int) -> None:
        with httpx.Client(timeout=300) as client:
            statuses.append(
                client.post(f"{url}/verify", json={"fiber_mask": masks(1, i)[0]}).status_code
            )

    def predict() -> None:
        with httpx.Client(timeout=60) as client:
            body = {"fiber_mask": masks(1, 99)[0]}
            while not done.is_set():
                seconds, answer = timed(client, f"{url}/predict", body)
                predict_times.append(seconds)
                predict_statuses.append(answer.status_code)

    meanwhile = threading.Thread(target=predict)
    meanwhile.start()
    with ThreadPoolExecutor(FLOOD) as pool:
        list(pool.map(check, range(FLOOD)))
    done.set()
    meanwhile.join()
    return statistics.median(predict_times), statuses, predict_statuses


def kill_during_check(client: httpx.Client, url: str, server_pid: int) -> tuple[int, float]:
    """(status of the check whose worker was killed, seconds from the kill to a 200 check)."""
    body = {"fiber_mask": masks(8, 5)}
    (worker,) = fe_workers(server_pid)
    before = sum(worker.cpu_times()[:2])
    answer: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answer.append(client.post(f"{url}/verify", json=body)))
    thread.start()
    while sum(worker.cpu_times()[:2]) < before + 0.05 and thread.is_alive():
        time.sleep(0.005)
    killed = time.perf_counter()
    os.kill(worker.pid, signal.SIGKILL)
    thread.join()
    while True:
        status = client.post(f"{url}/verify", json={"fiber_mask": masks(1, 1)[0]}).status_code
        if status == 200:
            return answer[0].status_code, time.perf_counter() - killed
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--checks", type=int, default=30)
    args = parser.parse_args()
    env = {
        "MICROSTRAIN_STATE_DIR": tempfile.mkdtemp(prefix="bench-verify-"),
        "MICROSTRAIN_WORKERS": "1",
        "MICROSTRAIN_VERIFY_CONCURRENCY": "1",
        "MICROSTRAIN_VERIFY_QUEUE": "4",
    }
    with running_server([args.model], env) as server, httpx.Client(timeout=300) as client:
        url = server.url
        one_sample(client, url, 3)  # the FE worker's start-up and first solve
        single = one_sample(client, url, args.checks)
        eight, eight_rest = [], []
        for i in range(max(5, args.checks // 6)):
            seconds, answer = timed(client, f"{url}/verify", {"fiber_mask": masks(8, 100 + i)})
            assert answer.status_code == 200, answer.text[:300]
            eight.append(seconds)
            eight_rest.append(seconds - answer.json()["fe_seconds"])
        predict_p50(client, url, 20)
        idle = predict_p50(client, url, 100)
        busy, statuses, predict_statuses = flood(url)
        killed_status, recovery = kill_during_check(client, url, server.process.pid)
    solve = statistics.median(single["solve"])
    wall = statistics.median(single["wall"])
    eight_p50 = statistics.median(eight)
    five = sum(s >= 500 for s in statuses + predict_statuses)
    overhead = statistics.median(single["overhead"])
    flood_text = ", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses)))
    predict_5xx = sum(s >= 500 for s in predict_statuses)
    bound = 8 * solve + 0.1
    rest = statistics.median(eight_rest)
    rows = [
        (
            "one-sample /verify p50 (p90)",
            f"{1e3 * wall:.0f} ms ({1e3 * p(single['wall'], 90):.0f})",
            "≤ 150 ms (goal 100)",
            wall <= 0.150,
        ),
        (
            "  of which FE solve / overhead (p50)",
            f"{1e3 * solve:.0f} / {1e3 * overhead:.1f} ms",
            "",
            None,
        ),
        (
            "eight-sample /verify p50",
            f"{1e3 * eight_p50:.0f} ms",
            f"≤ 8 × {1e3 * solve:.0f} + 100 = {1e3 * bound:.0f} ms",
            eight_p50 <= bound,
        ),
        (
            "  beyond its own 8 solves (p50)",
            f"{1e3 * rest:.0f} ms",
            "≤ 100 ms",
            rest <= 0.1,
        ),
        (
            "/predict p50 idle → under 20 checks",
            f"{1e3 * idle:.2f} → {1e3 * busy:.2f} ms ({busy / idle:.2f}×)",
            "≤ 2×, no 5xx",
            busy <= 2 * idle and five == 0,
        ),
        ("  flood statuses", f"{flood_text}; /predict 5xx: {predict_5xx}", "", None),
        (
            "SIGKILL of the FE worker mid-check",
            f"that check {killed_status}; next 200 after {recovery:.2f} s",
            "503 and ≤ 10 s",
            killed_status == 503 and recovery <= 10,
        ),
    ]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{cpu_description()}; load average {load}; model {args.model.name}")
    print("| measure | value | target | met |\n|---|---|---|---|")
    for name, value, target, met in rows:
        print(
            f"| {name} | {value} | {target} | {'' if met is None else ('yes' if met else 'no')} |"
        )


if __name__ == "__main__":
    main()
