"""Which onnxruntime session answers a small request (1–4 samples): two threads while the machine
has the cores for them, else one.

On a 2-core machine a two-thread one-sample run is faster than a one-thread run while the other
core is idle, and more than twice as slow while another process keeps it busy: the second thread
waits for a time slice, and spins against the event loop when it has one (figures in
docs/serving.md, "MICROSTRAIN_SMALL_THREADS"). Timing the runs cannot tell the two apart,
because a spinning thread steals its time after the run, from the HTTP stack. So with
``MICROSTRAIN_SMALL_THREADS=auto`` (the default, :func:`serving.settings.small_request_threads`)
:class:`SmallSessions` looks at what the other processes use: the machine's busy CPU time less
this worker's own, over the last :data:`INTERVAL_S` (psutil). A session of ``t`` threads is used
while the others leave at least ``t`` − :data:`~microstrain.hardware.SLACK_CORES` cores idle (the
one rule, :func:`microstrain.hardware.threads_the_others_leave`, which training's torch threads
follow too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from microstrain.hardware import (
    SLACK_CORES,
    others_busy_cores,
    threads_the_others_leave,
    usable_cores,
)

__all__ = ["INTERVAL_S", "SLACK_CORES", "SmallSessions", "others_busy_cores"]

INTERVAL_S = 0.5  # how often the others' CPU use is measured (each reading about 50 µs)


class SmallSessions[S]:
    """Sessions of small requests by thread count; :meth:`pick` the one the free cores allow."""

    def __init__(
        self,
        sessions: Mapping[int, S],
        cores: int | None = None,
        others: Callable[[], float] | None = None,
    ) -> None:
        if not sessions:
            raise ValueError("SmallSessions needs at least one session")
        self.sessions = dict(sorted(sessions.items()))
        self.cores = cores if cores is not None else usable_cores()
        self._others: Callable[[], float] | None = None
        if len(self.sessions) > 1:
            self._others = others if others is not None else others_busy_cores()
        self._threads = min(self.sessions)
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def pick(self) -> S:
        """The session for the next small request."""
        return self.sessions[self.threads()]

    def threads(self) -> int:
        """The thread count the cores allow now (measured at most every INTERVAL_S)."""
        if self._others is None:
            return self._threads
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= INTERVAL_S:
                others = self._others()
                self._threads = threads_the_others_leave(self.sessions, self.cores, others)
                self._checked = now
            return self._threads
