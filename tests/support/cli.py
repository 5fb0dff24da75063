"""The ``microstrain`` command for tests: in-process through the real error contract, or as a
subprocess of the installed package."""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from microstrain.app import run
from microstrain_cli import build_app

# `python -m microstrain_cli ...`: the command as a separate process (signals, MPI, servers)
MICROSTRAIN = [sys.executable, "-m", "microstrain_cli"]


def mpiexec() -> str:
    """The venv's ``mpiexec`` (else the one on PATH) for the MPI tests; skips the test without."""
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which("mpiexec", path=venv_bin) or shutil.which("mpiexec")
    if found is None:
        pytest.skip("mpiexec not found")
    return found


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(*args: object) -> CliResult:
    """Run ``microstrain ARGS`` in-process as the shell would: user errors become one
    ``error:`` line on stderr and exit status 1 (``microstrain.app.run``)."""
    app = build_app()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(app, [str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_one_error_line(result: CliResult, message: str) -> None:
    """A user error as the CLI promises it: exit 1 and one ``error:`` line naming ``message``."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
