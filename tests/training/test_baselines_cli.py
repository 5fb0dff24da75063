"""`microstrain baselines`: sine and strain end to end on small settings, and the error lines.

The dynamics experiment's outputs are checked on a tiny run in test_baselines_dynamics.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from microstrain_cli import build_app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    from microstrain.app import run

    try:
        run(build_app(), ["baselines", *args])
    except SystemExit as exc:
        return int(exc.code or 0), ""
    return 0, ""


def test_sine_writes_report_and_figures(tmp_path: Path) -> None:
    result = runner.invoke(
        build_app(), ["baselines", "sine", "--quick", "--epochs", "20", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = (tmp_path / "sine" / "sine.md").read_text()
    assert "91,501" in report and "2,566,401" in report  # computed capacity table
    assert "Sobolev" in report
    pngs = sorted(p.name for p in (tmp_path / "sine").glob("*.png"))
    assert pngs == sorted(
        f"sine_{g}.png" for g in ("gradient_descent", "optimizer", "regularization", "sobolev")
    )
    data = json.loads((tmp_path / "sine" / "sine.json").read_text())
    assert data["parameters"] == 2701


@pytest.mark.slow
def test_strain_quick_on_standin_data(tmp_path: Path, standin_h5: Path) -> None:
    result = runner.invoke(
        build_app(),
        [
            "baselines",
            "strain",
            "--quick",
            "--epochs",
            "1",
            "--data",
            str(standin_h5),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "strain" / "strain.json").read_text())
    assert {"fc-strain", "gnn-strain", "rnn-strain", "course-cnn"} <= set(data["models"])
    for entry in data["models"].values():
        assert entry["parameters"] > 0 and entry["test"]["strain_relative_l2"] > 0
    assert "gnn-strain" in (tmp_path / "strain" / "strain.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense"], "unknown experiment"),
        (["strain"], "needs --data"),
        (["strain", "--data", "missing.h5"], "dataset not found"),
        (["dynamics", "--json", "missing-dir/dynamics.json"], "directory of --json does not exist"),
    ],
)
def test_user_errors_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _ = _run(*args, "--out", str(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error:") and message in err and "\n" not in err
