"""Process settings of the service, read from the environment (light: no bentoml import).

``microstrain serve`` checks them once before it starts the BentoML workers (a bad value is one
``error:`` line, not a worker traceback) and passes them on; ``bentoml serve`` users and container
images set them directly.

- ``MICROSTRAIN_WORKERS``: worker processes (1)
- ``MICROSTRAIN_VERIFY_CONCURRENCY``: FE solves of ``/verify`` at once, all workers together
  (cores − 1, at least 1: the predictions keep a core)
- ``MICROSTRAIN_VERIFY_QUEUE``: ``/verify`` requests that may wait for a solve; more get 429 (4)
- ``MICROSTRAIN_VERIFY_TIMEOUT_S``: seconds one FE solve, or the wait for one, may take (25)
- ``MICROSTRAIN_API_TOKEN``: if set, requests need ``Authorization: Bearer <token>`` (unset)
- ``MICROSTRAIN_SMALL_THREADS``: onnxruntime threads of requests of up to 4 samples, at most
  the worker's share of the cores; ``auto`` (the default) uses 2 while other processes leave
  the cores idle, else 1 (:func:`small_request_threads`)
- ``MICROSTRAIN_ACCESS_LOG``: 1 logs a line per request (BentoML's access log); 0 (the
  default) does not (:func:`logging_config`)
- ``MICROSTRAIN_TRACING``: 1 lets BentoML's OpenTelemetry middleware trace requests as its own
  ``tracing`` configuration says; 0 (the default) skips it (:func:`tracing_config`)
"""

from __future__ import annotations

import math
import os

from microstrain.errors import MicrostrainError
from microstrain.hardware import usable_cores

WORKERS_ENV_VAR = "MICROSTRAIN_WORKERS"
VERIFY_CONCURRENCY_ENV_VAR = "MICROSTRAIN_VERIFY_CONCURRENCY"
VERIFY_QUEUE_ENV_VAR = "MICROSTRAIN_VERIFY_QUEUE"
VERIFY_TIMEOUT_ENV_VAR = "MICROSTRAIN_VERIFY_TIMEOUT_S"
API_TOKEN_ENV_VAR = "MICROSTRAIN_API_TOKEN"
TRACING_ENV_VAR = "MICROSTRAIN_TRACING"
ACCESS_LOG_ENV_VAR = "MICROSTRAIN_ACCESS_LOG"
SMALL_THREADS_ENV_VAR = "MICROSTRAIN_SMALL_THREADS"

DEFAULT_VERIFY_QUEUE = 4
# one solve of ≤ 8 samples at k = 4 takes 2-6 s on the busy 2-core machine, most of it the
# solver's start-up; the limit also sets BentoML's request timeout (request_timeout_s)
DEFAULT_VERIFY_TIMEOUT_S = 25.0


def _whole(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MicrostrainError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise MicrostrainError(f"{name} must be at least {minimum}, got {value}")
    return value


def configured_workers() -> int:
    raw = os.environ.get(WORKERS_ENV_VAR, "1")
    try:
        return max(1, int(raw))
    except ValueError:
        raise MicrostrainError(f"{WORKERS_ENV_VAR}={raw!r} is not a whole number") from None


def intra_op_threads(workers: int) -> int:
    """onnxruntime threads per worker: the cores shared out, at least one (ORT ignores OMP_*)."""
    return max(1, usable_cores() // workers)


def small_request_threads(workers: int) -> tuple[int, ...]:
    """onnxruntime thread counts of the sessions that answer requests of up to 4 samples.

    ``auto`` (the default): (1, 2) where a worker has two cores or more, else (1,); the worker
    uses two while other processes leave the cores idle, else one (:mod:`serving.small_sessions`).
    On an idle 2-core machine two threads answer one sample of a BatchNorm model in about 0.7×
    the time of one; under load the second thread, spinning after each run, waits for time
    slices and takes more than twice as long (docs/serving.md). A whole number fixes the count,
    at most the worker's share of the cores (:func:`intra_op_threads`).
    """
    share = intra_op_threads(workers)
    raw = os.environ.get(SMALL_THREADS_ENV_VAR, "").strip()
    if raw.lower() in ("", "auto"):
        return (1, 2) if share >= 2 else (1,)
    try:
        value = int(raw)
    except ValueError:
        raise MicrostrainError(
            f"{SMALL_THREADS_ENV_VAR}={raw!r} is neither 'auto' nor a whole number"
        ) from None
    if value < 1:
        raise MicrostrainError(f"{SMALL_THREADS_ENV_VAR} must be at least 1, got {value}")
    if value > share:
        raise MicrostrainError(
            f"{SMALL_THREADS_ENV_VAR} must be at most {share}, the cores of one of {workers} "
            f"worker(s), got {value}"
        )
    return (value,)


def verify_concurrency() -> int:
    """FE solves at once; the default leaves the predictions a core (cores − 1, at least 1)."""
    return _whole(VERIFY_CONCURRENCY_ENV_VAR, max(1, usable_cores() - 1), 1)


def verify_queue() -> int:
    """``/verify`` requests that may wait for a free solve (0: none wait, all beyond get 429)."""
    return _whole(VERIFY_QUEUE_ENV_VAR, DEFAULT_VERIFY_QUEUE, 0)


def verify_timeout_s() -> float:
    """Seconds one FE solve may run (then it is killed), and a request may wait for one."""
    raw = os.environ.get(VERIFY_TIMEOUT_ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_VERIFY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise MicrostrainError(f"{VERIFY_TIMEOUT_ENV_VAR}={raw!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise MicrostrainError(f"{VERIFY_TIMEOUT_ENV_VAR} must be a positive number, got {raw}")
    return value


def api_token() -> str | None:
    """The bearer token every request but the health probes must carry, or None (no check)."""
    token = os.environ.get(API_TOKEN_ENV_VAR, "")
    if not token:
        return None
    if token != token.strip() or not token.isprintable() or not token.isascii():
        raise MicrostrainError(
            f"{API_TOKEN_ENV_VAR} must be printable ASCII without surrounding spaces"
        )
    return token


def _switch(name: str) -> bool:
    """A 0/1 setting, 0 when unset."""
    raw = os.environ.get(name, "").strip()
    if raw not in ("", "0", "1"):
        raise MicrostrainError(f"{name} must be 0 or 1, got {raw!r}")
    return raw == "1"


def tracing_enabled() -> bool:
    """Whether requests go through BentoML's tracing (``MICROSTRAIN_TRACING`` 1) or not (0)."""
    return _switch(TRACING_ENV_VAR)


def access_log_enabled() -> bool:
    """Whether BentoML logs a line per request (``MICROSTRAIN_ACCESS_LOG`` 1) or not (0)."""
    return _switch(ACCESS_LOG_ENV_VAR)


def logging_config() -> dict[str, dict[str, bool]]:
    """The service's ``logging`` configuration: BentoML's access log only when asked for.

    Its line per request costs about a tenth of a one-sample ``/predict_npy`` (figures in
    docs/serving.md, ``MICROSTRAIN_ACCESS_LOG``). A deployment behind a proxy has the proxy's
    access log; the request counts and latencies are in ``/metrics`` either way, and errors are
    logged either way.
    """
    return {"access": {"enabled": access_log_enabled()}}


def tracing_config() -> dict[str, str]:
    """The service's ``tracing`` configuration: empty (BentoML's own) when tracing is enabled.

    BentoML samples no traces unless its configuration sets ``tracing.sample_rate``, yet its
    OpenTelemetry middleware still opens a span for each request: 0.3-0.5 ms of a one-sample
    ``/predict_npy`` of about 4 ms on the 2-core machine (docs/serving.md), and each request's
    tracing context is kept until BentoML's request timeout (:func:`request_timeout_s`). So
    unless ``MICROSTRAIN_TRACING=1``, every path is on the middleware's exclusion list.
    """
    return {} if tracing_enabled() else {"excluded_urls": ".*"}


def request_timeout_s() -> float:
    """BentoML's per-request limit: a /verify may wait for a solve, then run one, then answer.

    Kept as short as that allows: BentoML 1.4's timeout middleware schedules a timer per request
    and never cancels it, so every request's tracing context (about 9 kB) stays in memory until
    its timeout has passed. Worker memory grows by request rate × this time, then levels off
    (figures in docs/serving.md, "Reliability").
    """
    return 2 * verify_timeout_s() + 10


def check_all() -> None:
    """Read every setting once; raises :class:`MicrostrainError` on the first bad value."""
    small_request_threads(configured_workers())
    verify_concurrency()
    verify_queue()
    verify_timeout_s()
    api_token()
    tracing_enabled()
    access_log_enabled()
