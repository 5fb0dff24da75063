"""Atomic writes: an output appears whole under its name, or not at all.

Every artifact of the pipeline (datasets, strain files, checkpoints' run records, model
directories, reports, plots) is written through these helpers, so an interrupted or failed write
never leaves a file or directory that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from microstrain.errors import MicrostrainError


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """The directory ``path`` will be written in; a user error if it is missing or read-only."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MicrostrainError(f"output directory does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise MicrostrainError(f"output directory is not writable: {parent}")
    if target.is_dir():
        raise MicrostrainError(f"output {target} is a directory; give a file name")
    return parent


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    target = Path(path)
    parent = check_output_dir(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the result the permissions a plain open() would
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON (with a final newline) to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``target``; it becomes ``target`` on success.

    An existing non-empty ``target`` is refused unless ``force`` (then it is replaced whole, so
    nothing of an earlier artifact survives beside the new one).
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise MicrostrainError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise MicrostrainError(f"{target} is not empty; choose another directory or use --force")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MicrostrainError(f"cannot create {target.parent}: {exc}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; an artifact directory is not
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (datasets and models are identified by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def timestamp() -> str:
    """The ``created`` timestamp of every artifact: ISO 8601, UTC, seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")
