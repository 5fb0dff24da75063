"""Bounded FE checks: slots shared through lock files; the long-lived FE workers
(microstrain.fe_client) stop a solve past its time or a cancelled one with the worker's process
group and replace the worker at once."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import psutil
import pytest

from microstrain.fe_client import FEPool, SolveFailed
from serving import verify
from serving.fe_slots import Busy, SolveSlots, WaitedTooLong

CONFIG = {"mode": "refined", "k": 4, "plane": "stress"}


def test_slots_bound_running_and_waiting_across_workers(tmp_path):
    """Two SolveSlots over one directory stand for two workers: 1 may run and 2 wait in all."""

    async def scenario() -> tuple[list[str], int]:
        workers = [SolveSlots.in_directory(tmp_path, concurrency=1, queue=2) for _ in range(2)]
        running = 0
        peak = 0
        events: list[str] = []

        async def request(i: int) -> None:
            nonlocal running, peak
            try:
                async with workers[i % 2].slot(wait_s=30):
                    running += 1
                    peak = max(peak, running)
                    await asyncio.sleep(0.15)
                    running -= 1
                events.append("done")
            except Busy as exc:
                assert exc.status == 429 and exc.retry_after >= 1
                assert "MICROSTRAIN_VERIFY_QUEUE" in str(exc)
                events.append("busy")

        await asyncio.gather(*(request(i) for i in range(6)))
        return events, peak

    events, peak = asyncio.run(scenario())
    assert peak == 1  # never two solves at once, though they came through two "workers"
    assert sorted(events) == ["busy"] * 3 + ["done"] * 3  # 1 running + 2 waiting admitted


def test_a_request_that_waits_too_long_gets_503(tmp_path):
    async def scenario() -> None:
        slots = SolveSlots.in_directory(tmp_path, concurrency=1, queue=1)
        async with slots.slot(wait_s=5):
            with pytest.raises(WaitedTooLong) as info:
                async with slots.slot(wait_s=0.2):
                    pass
            assert info.value.status == 503 and info.value.retry_after >= 1
        async with slots.slot(wait_s=0.2):  # both slots are free again
            pass

    asyncio.run(scenario())


def test_an_unwritable_slot_directory_falls_back_to_a_private_one(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    slots = SolveSlots.in_directory(blocker / "slots", concurrency=2, queue=0)
    assert slots.directory.is_dir() and slots.directory != blocker / "slots"


def test_retry_after_follows_the_solve_times():
    slots = SolveSlots(directory=None, concurrency=2, queue=4)  # type: ignore[arg-type]
    for _ in range(40):
        slots.record(2.1)
    assert slots.retry_after() == 7  # ⌈2.1 s x (2 running + 4 waiting) / 2 at a time⌉


def _sessions_alive(sessions: set[int]) -> list[int]:
    """Processes (not zombies) of the given sessions."""
    alive = []
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getsid(process.pid) in sessions and process.info["status"] != "zombie":
                alive.append(process.pid)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


@pytest.fixture
def pool():
    if not verify.fe_solver_available():
        pytest.skip("dolfinx or data_gen not installed")
    pool = FEPool(1)
    yield pool
    pool.close()


@pytest.mark.slow
def test_a_solve_past_its_time_is_killed_with_its_process_group_and_replaced(pool):
    e = np.full((1, 1, 32, 32), 3000.0, np.float32)
    first = pool.start().pids()
    # the worker's start-up (importing dolfinx) alone takes longer than 0.2 s
    with pytest.raises(verify.SolveTimeout, match=r"longer than 0\.2 s"):
        pool.solve(e, CONFIG, timeout_s=0.2)
    assert _sessions_alive(set(first)) == []  # the worker leads its session: its pid is the id
    replacement = pool.pids()
    assert len(replacement) == 1 and replacement != first  # started at once, not at next use
    strain, timings = pool.solve(e, CONFIG, timeout_s=120)
    assert strain.shape == (1, 3, 32, 32) and timings["solve"] > 0
    np.testing.assert_allclose(strain[0, 0].mean(), 0.1, rtol=1e-3)  # homogeneous: ε_xx = ū


@pytest.mark.slow
def test_a_cancelled_check_stops_its_worker(pool):
    e = np.full((8, 1, 32, 32), 3000.0, np.float32)
    first = pool.start().pids()

    async def scenario() -> None:
        task = asyncio.create_task(pool.asolve(e, CONFIG, timeout_s=120))
        deadline = asyncio.get_running_loop().time() + 30
        while pool.busy() == 0:  # the request has its worker (still starting: a long wait)
            assert asyncio.get_running_loop().time() < deadline and not task.done()
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert _sessions_alive(set(first)) == []
    assert pool.pids() != first


@pytest.mark.slow
def test_input_the_solver_refuses_is_one_message_and_the_worker_stays(pool):
    bad = np.full((1, 1, 32, 32), 5.0, np.float32)  # neither phase
    first = pool.start().pids()
    with pytest.raises(SolveFailed, match="neither phase"):
        pool.solve(bad, CONFIG, timeout_s=120)
    assert pool.pids() == first
