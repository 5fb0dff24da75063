"""A real ``microstrain serve`` on a free loopback port, started and stopped from Python.

The one harness of the tests, the benchmarks and ``make demo``: :func:`running_server` starts
the command as a child process (its own process group, so BentoML's workers stop with it),
waits until ``/readyz`` answers 200 (bounded, and failing at once if the process exits), yields
a :class:`LocalServer` (base URL, process, seconds to ready) and stops it with SIGTERM (SIGKILL
after a bound). Its output goes to a log file:
a full pipe would block the server.

:func:`fuzz` runs schemathesis against such a server's OpenAPI document: the test that allows
no 5xx and the reliability benchmark that counts statuses share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from microstrain.conventions import MODEL_ENV_VAR
from microstrain.errors import MicrostrainError
from serving.registry import MODELS_ENV_VAR

START_TIMEOUT_S = 120.0  # a cold start imports BentoML and loads every model's sessions
STOP_TIMEOUT_S = 30.0
POLL_S = 0.3


class ServerFailed(MicrostrainError):
    """The server exited or did not become ready in time (the message holds its log's tail)."""


@dataclass(frozen=True)
class LocalServer:
    """A running ``microstrain serve``: where it answers and which process leads it."""

    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]  # leads the process group (BentoML's arbiter after exec)
    ready_s: float  # seconds from the start of the command until /readyz answered 200


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_ready(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url/readyz`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=timeout_s) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def _tail(log_path: Path, chars: int = 3000) -> str:
    try:
        return log_path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@contextlib.contextmanager
def running_server(
    models: Sequence[Path] = (),
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    extra_args: Sequence[str] = (),
    start_timeout_s: float = START_TIMEOUT_S,
    cwd: Path | None = None,
) -> Iterator[LocalServer]:
    """``microstrain serve --model M ...`` (each of ``models``; none: the command's default,
    every model under ``models/``) on a free loopback port until the block ends; yields the
    :class:`LocalServer`. ``env`` is added to this process's environment; the model variables
    are dropped so that only ``models`` select; ``cwd`` is the command's working directory (a
    benchmark serves another checkout from there). :class:`ServerFailed` if it exits or is not
    ready in time."""
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    for name in (MODEL_ENV_VAR, MODELS_ENV_VAR):
        full_env.pop(name, None)
    cmd = [sys.executable, "-m", "microstrain_cli", "serve", "--port", str(port)]
    for model in models:
        cmd += ["--model", str(model)]
    cmd += list(extra_args)
    log_path = log_path or Path(os.devnull)
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # its BentoML workers share the group: stopped together
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while not is_ready(url):
            if proc.poll() is not None:
                raise ServerFailed(f"serve exited with {proc.returncode}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"serve was not ready after {start_timeout_s:g} s: {_tail(log_path)}"
                )
            time.sleep(POLL_S)
        yield LocalServer(url, proc, time.monotonic() - started)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (BentoML's arbiter stops its workers), SIGKILL
    after :data:`STOP_TIMEOUT_S`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass(frozen=True)
class FuzzRun:
    """What one schemathesis run answered: its exit status and output, and per operation
    (``"POST /predict"``) the status codes of every response it got."""

    returncode: int
    stdout: str
    stderr: str
    statuses: dict[str, list[int]]


def fuzz(
    url: str,
    workdir: Path,
    examples: int,
    seed: int,
    request_timeout_s: float | None = None,
    timeout_s: float | None = None,
) -> FuzzRun:
    """schemathesis (``st``, installed beside this Python) on every operation of ``url``'s
    ``/docs.json`` with ``examples`` examples each and the check ``not_a_server_error``.

    ``workdir`` holds its ndjson report and is its working directory (it keeps a
    ``.schemathesis/`` example database there); ``request_timeout_s`` bounds each request,
    ``timeout_s`` the whole run (``subprocess.TimeoutExpired`` past it)."""
    report = workdir / "fuzz.ndjson"
    cmd = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{url}/docs.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
    ]
    if request_timeout_s is not None:
        cmd += ["--request-timeout", f"{request_timeout_s:g}"]
    cmd += ["--no-color", "--report", "ndjson", "--report-ndjson-path", str(report)]
    run = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=workdir
    )
    statuses: dict[str, list[int]] = {}
    for line in report.read_text().splitlines() if report.exists() else []:
        for event in json.loads(line).values():
            recorder = event.get("recorder") if isinstance(event, dict) else None
            if not recorder:
                continue
            for interaction in recorder.get("interactions", {}).values():
                if interaction.get("response"):
                    code = int(interaction["response"]["status_code"])
                    statuses.setdefault(recorder["label"], []).append(code)
    return FuzzRun(run.returncode, run.stdout, run.stderr, statuses)
