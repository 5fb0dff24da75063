"""Fixtures shared by every test package."""

from collections.abc import Callable

import pytest


@pytest.fixture
def run_cli() -> Callable[..., int]:
    """Run ``microstrain ARGS`` in-process and return its exit status (as the shell would)."""
    from microstrain.cli import main

    def run(*args: str) -> int:
        try:
            main(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return run
