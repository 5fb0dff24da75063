"""MICROSTRAIN_SMALL_THREADS: the onnxruntime threads of one- to four-sample requests, and the
choice between one and two by what other processes leave free (serving.small_sessions)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from microstrain.errors import MicrostrainError
from microstrain.hardware import usable_cores
from serving import small_sessions
from serving.settings import SMALL_THREADS_ENV_VAR, small_request_threads
from serving.small_sessions import SmallSessions, others_busy_cores


def test_auto_offers_one_and_two_threads_a_number_fixes_it_at_most_the_workers_share(
    monkeypatch,
):
    cores = usable_cores()
    auto = (1, 2) if cores >= 2 else (1,)
    monkeypatch.delenv(SMALL_THREADS_ENV_VAR, raising=False)
    assert small_request_threads(1) == auto
    monkeypatch.setenv(SMALL_THREADS_ENV_VAR, "Auto")
    assert small_request_threads(1) == auto
    assert small_request_threads(cores + 1) == (1,)  # a worker with one core: nothing to choose
    monkeypatch.setenv(SMALL_THREADS_ENV_VAR, str(cores))
    assert small_request_threads(1) == (cores,)
    for raw, message in (
        ("0", "must be at least 1"),
        ("two", "is neither 'auto' nor a whole number"),
        (str(cores + 1), f"must be at most {cores}, the cores of one of 1 worker"),
    ):
        monkeypatch.setenv(SMALL_THREADS_ENV_VAR, raw)
        with pytest.raises(MicrostrainError, match=message):
            small_request_threads(1)


def test_serve_refuses_more_threads_than_cores_in_one_line(model_dir, service_env):
    env = {**service_env, SMALL_THREADS_ENV_VAR: str(usable_cores() + 1)}
    run = subprocess.run(
        [sys.executable, "-m", "microstrain_cli", "serve", "--model", str(model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {SMALL_THREADS_ENV_VAR} must be at most"
    )


def test_two_threads_while_the_other_processes_leave_the_cores_idle(monkeypatch):
    monkeypatch.setattr(small_sessions, "INTERVAL_S", 0.0)  # measure before every pick
    readings = iter([0.3, 1.9, 0.6, 1.4, 1.1])  # cores other processes kept busy
    sessions = SmallSessions({1: "one thread", 2: "two threads"}, cores=2, others=readings.__next__)
    picked = [sessions.pick() for _ in range(5)]
    # two threads need two cores; half a core of slack (a light client on the same machine)
    assert picked == ["two threads", "one thread", "one thread", "one thread", "one thread"]
    assert SmallSessions({1: "a", 2: "b"}, cores=4, others=lambda: 2.4).pick() == "b"


def test_readings_are_reused_for_an_interval_and_one_session_is_never_measured(monkeypatch):
    calls = []

    def others() -> float:
        calls.append(1)
        return 0.0

    sessions = SmallSessions({1: "one", 2: "two"}, cores=2, others=others)
    assert {sessions.pick() for _ in range(100)} == {"two"}
    assert len(calls) == 1  # 100 picks well within INTERVAL_S
    fixed = SmallSessions({2: "fixed"}, others=others)
    assert {fixed.pick() for _ in range(10)} == {"fixed"} and len(calls) == 1
    with pytest.raises(ValueError, match="at least one session"):
        SmallSessions({})


def test_the_reader_sees_another_process_busy():
    read = others_busy_cores()
    start = time.monotonic()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        spent = psutil.Process(burner.pid)
        deadline = start + 60
        while (cpu := sum(spent.cpu_times()[:2])) < 0.5:  # half a CPU second, however crowded
            assert time.monotonic() < deadline, "the busy loop got no CPU time"
            time.sleep(0.05)
        busy = read()
        elapsed = time.monotonic() - start
    finally:
        burner.kill()
        burner.wait()
    # the burner's CPU time is part of what the others kept busy over the reader's interval
    assert busy * elapsed >= 0.9 * cpu
