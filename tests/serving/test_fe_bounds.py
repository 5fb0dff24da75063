"""Bounded FE checks: slots shared through lock files, and a solve past its time is killed."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import psutil
import pytest

from serving import verify
from serving.fe_slots import Busy, SolveSlots, WaitedTooLong


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


@pytest.mark.slow
def test_a_solve_past_its_time_is_killed_with_its_process_group():
    if not verify.fe_solver_available():
        pytest.skip("dolfinx or data_gen not installed")
    e = np.full((1, 1, 32, 32), 3000.0, np.float32)

    async def scenario() -> set[int]:
        # children of this process from earlier tests (a session's server) are not the solver's
        earlier = {child.pid for child in psutil.Process().children()}
        # the solver's start-up (importing dolfinx) alone takes longer than 0.5 s
        task = asyncio.create_task(verify.fe_solve(e, "refined", 4, "stress", timeout_s=0.5))
        sessions: set[int] = set()  # the solver leads its own session: its pid is the id
        while not task.done():
            sessions |= {child.pid for child in psutil.Process().children()} - earlier
            await asyncio.sleep(0.02)
        with pytest.raises(verify.SolveTimeout, match="MICROSTRAIN_VERIFY_TIMEOUT_S"):
            await task
        return sessions

    start = time.monotonic()
    sessions = asyncio.run(scenario())
    assert sessions and time.monotonic() - start < 30
    survivors = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getsid(process.pid) in sessions:
                survivors.append(process.pid)
        except (ProcessLookupError, PermissionError):
            pass
    assert survivors == [], "solver processes survived the timeout"
