"""Markdown reports with PNG figures for the baseline experiments, and the combined report.

Each experiment writes ``<name>.md`` beside its figures in its results folder and a
``<name>.json`` with the numbers; :func:`combined_report` stitches the headline tables of the
experiments that have been run into ``README.md`` of the results root.
Every file is written through :func:`microstrain.fields.atomic_output`, so an interrupted run never
leaves a report that looks complete.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from microstrain.files import atomic_output

HEADLINE_START = "<!-- headline -->"
HEADLINE_END = "<!-- /headline -->"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are str()-ed as given."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save_figure(fig: Any, path: Path, dpi: int = 110) -> str:
    """Save a matplotlib figure atomically, close it, return its file name (for linking)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path.name


def write_report(
    path: Path, title: str, body: Sequence[str], figures: Mapping[str, str] | None = None
) -> None:
    """``# title``, then the body paragraphs; the first table is marked as the headline.

    ``figures`` maps captions to PNG file names in the same folder.
    """
    parts = [f"# {title}", ""]
    marked = False
    for block in body:
        if not marked and block.lstrip().startswith("|"):
            block = f"{HEADLINE_START}\n{block}\n{HEADLINE_END}"
            marked = True
        parts += [block, ""]
    for caption, name in (figures or {}).items():
        parts += [f"![{caption}]({name})", ""]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """JSON with non-finite floats written as null (strict JSON has no inf/nan)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(clean(data), indent=2), encoding="utf-8")


def headline(report: Path) -> str | None:
    """The marked headline table of an experiment report, or None when absent."""
    if not report.is_file():
        return None
    text = report.read_text(encoding="utf-8")
    if HEADLINE_START not in text:
        return None
    return text.split(HEADLINE_START, 1)[1].split(HEADLINE_END, 1)[0].strip()


def combined_report(out_root: Path, experiments: Sequence[str]) -> Path:
    """``README.md`` in ``out_root`` with each experiment's headline table and a link to it."""
    body = [
        "Baselines from the lecture's other architectures, run by `microstrain baselines`. "
        "Each section links the full report with figures."
    ]
    for name in experiments:
        report = out_root / name / f"{name}.md"
        table = headline(report)
        body.append(f"## {name}\n\n[full report]({name}/{name}.md)")
        body.append(table if table else "_not run yet_")
    path = out_root / "README.md"
    out_root.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text("# Baseline comparison\n\n" + "\n\n".join(body) + "\n", encoding="utf-8")
    return path
