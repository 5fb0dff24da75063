"""The machine: one-line descriptions of where a time was measured, and the cores usable now."""

from __future__ import annotations

import os
import platform
from pathlib import Path


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
