"""Fixtures shared by every test package (the helpers themselves live in ``tests/support``)."""

import sys
from collections.abc import Callable

import pytest
from support.cli import invoke


@pytest.fixture
def run_cli() -> Callable[..., int]:
    """Run ``microstrain ARGS`` in-process and return its exit status (as the shell would)."""

    def run(*args: str) -> int:
        result = invoke(*args)
        sys.stdout.write(result.stdout)  # so capsys sees what the command printed
        sys.stderr.write(result.stderr)
        return result.exit_code

    return run
