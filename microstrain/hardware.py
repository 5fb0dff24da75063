"""The machine: one-line descriptions of where a time was measured, the cores usable now, and
how many threads the other processes leave room for (the "free cores" rule that serving's small
requests and training's torch threads both follow)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path

# of a core: a light neighbour (a client on the same machine) still leaves room for one more
# thread; a thread that has to wait for a busy core costs more than it brings
SLACK_CORES = 0.5


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, which containers and ``taskset`` narrow.

    The one count every thread setting uses (serving's onnxruntime threads, surrogate timing).
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def cpu_description() -> str:
    """e.g. ``"CPU: AMD EPYC 7B13 (2 cores)"``."""
    return f"CPU: {cpu_model()} ({usable_cores()} cores)"


def compute_description(gpu_name: str | None = None, torch_threads: int | None = None) -> str:
    """Where a training run computes: ``"GPU: <name>"``, or the CPU with torch's thread count,
    e.g. ``"CPU: AMD EPYC 7B13 (2 cores, 1 torch threads)"``."""
    if gpu_name is not None:
        return f"GPU: {gpu_name}"
    threads = "" if torch_threads is None else f", {torch_threads} torch threads"
    return f"CPU: {cpu_model()} ({usable_cores()} cores{threads})"


def others_busy_cores() -> Callable[[], float]:
    """A reader of the cores other processes kept busy since its previous call (averaged over
    that interval): the machine's busy CPU time less this process's own (psutil)."""
    import psutil

    own = psutil.Process()

    def sample() -> tuple[float, float, float]:
        cpu = psutil.cpu_times()
        mine = own.cpu_times()
        busy = sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0)
        return time.monotonic(), busy, mine.user + mine.system

    last = sample()

    def read() -> float:
        nonlocal last
        now = sample()
        elapsed = now[0] - last[0]
        others = ((now[1] - last[1]) - (now[2] - last[2])) / elapsed if elapsed > 0 else 0.0
        last = now
        return max(others, 0.0)

    return read


def threads_the_others_leave(choices: Iterable[int], cores: float, others_busy: float) -> int:
    """The most threads among ``choices`` that ``cores`` less what the others keep busy allow:
    t threads while the others leave at least t − :data:`SLACK_CORES` cores idle; the fewest
    choice when none fits."""
    options = sorted(set(choices))
    free = cores - others_busy
    return max(t for t in options if t == options[0] or free >= t - SLACK_CORES)


def free_core_threads(at_most: int, window_s: float = 0.5) -> int:
    """Threads from 1 to ``at_most`` that the other processes leave room for now, measured over
    ``window_s`` seconds (the one rule: :func:`threads_the_others_leave`)."""
    read = others_busy_cores()
    time.sleep(window_s)  # the measurement's window: CPU time is only known over an interval
    return threads_the_others_leave(range(1, max(1, at_most) + 1), usable_cores(), read())
