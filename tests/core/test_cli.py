"""The `microstrain` entry point: every SPEC §7 subcommand exists, help is fast and light."""

import subprocess
import sys

import pytest

from microstrain_cli import build_app

SPEC_COMMANDS = (
    "generate solve inspect convergence train export tau serve predict baselines".split()
)


def _command_names() -> set[str]:
    import typer.main

    group = typer.main.get_command(build_app())
    return set(group.commands)  # type: ignore[attr-defined]


def test_every_spec_subcommand_is_registered():
    assert set(SPEC_COMMANDS) <= _command_names()


def test_help_imports_neither_torch_nor_dolfinx():
    code = (
        "import sys\n"
        "from microstrain_cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'dolfinx', 'onnxruntime', 'bentoml') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY:\n" in out.stdout or out.stdout.rstrip().endswith("HEAVY:")


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_each_subcommand_has_help(command):
    out = subprocess.run(
        [sys.executable, "-m", "microstrain_cli", command, "--help"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout or "usage" in out.stdout


def test_user_error_is_one_line_and_nonzero(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "microstrain_cli",
            "predict",
            str(tmp_path / "nomodel"),
            str(tmp_path / "absent.npy"),
            "-o",
            str(tmp_path / "o.npy"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
