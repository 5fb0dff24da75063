"""FE checks against the real server: a flood is bounded, predictions keep answering, and a
killed FE worker is replaced.

The session server runs one FE solve at a time with 4 waiting (conftest.SERVER_SETTINGS) in a
long-lived FE worker process. 20 concurrent eight-sample /verify requests must get 200 or 429
(with Retry-After) and nothing else while /predict keeps answering 200. A worker killed with
SIGKILL in the middle of a check answers that check 503 with Retry-After, and the next check is
answered by its replacement. How fast all this is belongs to benchmarks/bench_verify.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import httpx
import numpy as np
import psutil
import pytest

from serving.verify import MAX_VERIFY_BATCH, fe_solver_available

pytestmark = pytest.mark.slow
FLOOD = 20


@pytest.fixture(autouse=True)
def _needs_the_solver() -> None:
    if not fe_solver_available():
        pytest.skip("dolfinx or data_gen not installed: /verify answers 501")


def test_a_flood_of_verify_is_bounded_and_predict_keeps_answering(server, mask):
    url, _ = server
    body = {"fiber_mask": [mask.tolist()] * MAX_VERIFY_BATCH}
    answers: list[httpx.Response] = []
    predictions: list[int] = []
    done = threading.Event()

    def verify_once(_: int) -> None:
        with httpx.Client(timeout=300) as client:
            answers.append(client.post(f"{url}/verify", json=body))

    def predict_meanwhile() -> None:
        with httpx.Client(timeout=60) as client:
            while not done.is_set():
                predictions.append(
                    client.post(f"{url}/predict", json={"fiber_mask": mask.tolist()}).status_code
                )

    meanwhile = threading.Thread(target=predict_meanwhile)
    meanwhile.start()
    try:
        with ThreadPoolExecutor(FLOOD) as pool:
            list(pool.map(verify_once, range(FLOOD)))
    finally:
        done.set()
        meanwhile.join(timeout=120)

    assert len(answers) == FLOOD  # every request answered
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 429}, [(r.status_code, r.text[:200]) for r in answers]
    # 1 running + 4 waiting are admitted; the other 15 arrive while those are still in hand
    assert statuses.count(429) >= 1 and statuses.count(200) >= 1, statuses
    for refused in (r for r in answers if r.status_code == 429):
        assert int(refused.headers["retry-after"]) >= 1
        assert "MICROSTRAIN_VERIFY_QUEUE" in refused.json()["error"]
    for ok in (r for r in answers if r.status_code == 200):
        timing = ok.json()
        assert timing["fe_seconds"] > 0 and timing["fe_overhead_seconds"] >= 0
        assert timing["speedup"] == pytest.approx(
            timing["fe_seconds"] / timing["surrogate_seconds"]
        )
    assert predictions and set(predictions) == {200}


def _fe_workers(url: str) -> list[psutil.Process]:
    """The FE worker processes of the server listening at ``url``."""
    port = str(urlparse(url).port)
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "serve" in cmdline and port in cmdline:
            return [
                child
                for child in process.children(recursive=True)
                if "data_gen.fe_worker" in " ".join(child.cmdline())
            ]
    raise AssertionError(f"no server process listening on port {port}")


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_a_worker_killed_during_a_check_answers_503_and_is_replaced(server):
    url, _ = server
    rng = np.random.default_rng(7)
    # the periodic model's largest images: a check that keeps the worker busy for a while
    masks = (rng.random((MAX_VERIFY_BATCH, 64, 64)) < 0.4).astype(int).tolist()
    body = {"model": "periodic", "fiber_mask": masks}
    with httpx.Client(timeout=120) as client:
        assert client.post(f"{url}/verify", json=body).status_code == 200  # workers warm
        (worker,) = _fe_workers(url)
        before = _cpu_seconds(worker)
        answer: list[httpx.Response] = []
        check = threading.Thread(
            target=lambda: answer.append(client.post(f"{url}/verify", json=body))
        )
        check.start()
        deadline = time.monotonic() + 60
        while _cpu_seconds(worker) < before + 0.2:  # the worker is solving this check
            assert time.monotonic() < deadline and check.is_alive(), "the check never started"
            time.sleep(0.01)
        os.kill(worker.pid, signal.SIGKILL)
        check.join(timeout=60)
        assert answer, "the check whose worker was killed got no answer"
        assert answer[0].status_code == 503, answer[0].text[:300]
        assert int(answer[0].headers["retry-after"]) >= 1
        assert "FE worker" in answer[0].json()["error"]

        small = [row[:32] for row in masks[0][:32]]
        replacement = client.post(f"{url}/verify", json={"fiber_mask": small})
        assert replacement.status_code == 200, replacement.text[:300]
        assert [w.pid for w in _fe_workers(url)] != [worker.pid]
