"""Start-up time and memory of one service serving one model, then several (SPEC §11 REST).

Starts ``microstrain serve`` (:mod:`serving.local_server`) with the first model alone, then with
every model given, ``--repeats`` times in turn, and measures the time from the command until
``/readyz`` answers and the workers' resident memory after one request to each model. Beside it,
what each added model's session takes alone (a further model has one: the default's
small-request sessions of ``MICROSTRAIN_SMALL_THREADS`` stay the default's; loaded and warmed as
the service does, in a fresh process that holds the first model's): the service should grow by
one session per added model and nothing else.

    .venv/bin/python benchmarks/bench_serving_models.py [--model DIR ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
from serving_load import (
    JSON,
    NPY,
    REPO,
    json_body,
    microstructures,
    npy_body,
    port_of,
    request,
    rss_mb,
)

from microstrain.hardware import cpu_description
from microstrain.surrogate import SurrogateModel
from serving.local_server import running_server
from serving.registry import discover, load_model
from serving.settings import configured_workers, intra_op_threads, small_request_threads


def sessions_mb(first: Path, second: Path) -> float:
    """RSS growth of a fresh process that holds ``first``'s sessions (loaded and warmed as the
    service does) when it loads ``second``'s too: what a model's sessions alone cost, MB."""
    cmd = [sys.executable, __file__, "--sessions-of", str(first), str(second)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return float(run.stdout.strip().splitlines()[-1])


def print_sessions_mb(first: Path, second: Path) -> None:
    """The child of :func:`sessions_mb`: prints the MB that ``second``'s sessions add."""
    workers = configured_workers()
    threads, small = intra_op_threads(workers), small_request_threads(workers)
    load_model(first, threads, small).warm_up()
    before = psutil.Process().memory_info().rss
    held = load_model(second, threads, ())  # a further model: one session (serving.registry)
    held.warm_up()
    print((psutil.Process().memory_info().rss - before) / 2**20)


def touch(port: int, name: str, periodic: bool) -> None:
    """One request to model ``name`` (its sessions' arenas reach their one-sample size)."""
    one = microstructures(1)
    if periodic:
        status = request(port, "POST", f"/predict_npy?model={name}", npy_body(one), NPY)[0]
    else:
        status = request(port, "POST", "/predict", json_body(one, model=name), JSON)[0]
    if status != 200:
        raise SystemExit(f"model {name}: HTTP {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=None, help="repeatable")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sessions-of", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sessions_of:
        print_sessions_mb(*args.sessions_of)
        return
    models = [m.resolve() for m in (args.model or discover(REPO / "models"))]
    if len(models) < 2:
        raise SystemExit("needs two models or more (--model DIR, repeated)")
    kinds = {m.name: SurrogateModel.load(m, intra_op_threads=1).is_periodic for m in models}
    sessions = 1 + len(small_request_threads(configured_workers()))
    print(
        f"{cpu_description()}; 1 worker, {sessions} onnxruntime sessions for the default model, "
        "1 for each further one"
    )
    print(f"models: {', '.join(m.name for m in models)}\n")

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-models-"))
    configs = {"1 model": models[:1], f"{len(models)} models": models}
    ready: dict[str, list[float]] = {c: [] for c in configs}
    memory: dict[str, list[float]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for label, served in configs.items():
            env = {"MICROSTRAIN_STATE_DIR": str(tmp / "state")}
            with running_server(served, env, tmp / "serve.log") as local:
                for m in served:
                    touch(port_of(local.url), m.name, kinds[m.name])
                ready[label].append(local.ready_s)
                memory[label].append(rss_mb(local.process.pid))
    alone = {m.name: sessions_mb(models[0], m) for m in models[1:]}

    print(f"{'served':10s} {'start-up s (median)':>20s} {'worker RSS MB (median)':>23s}")
    for label in configs:
        print(
            f"{label:10s} {statistics.median(ready[label]):20.2f} "
            f"{statistics.median(memory[label]):23.0f}"
        )
    one, many = (statistics.median(memory[c]) for c in configs)
    print(
        f"\nthe {len(models) - 1} more model(s) add {many - one:.0f} MB to the worker; their "
        "one session each, loaded and warmed as the service does in a process that "
        "holds the first model's: "
        + ", ".join(f"{name} {mb:.0f} MB" for name, mb in alone.items())
        + f" ({sum(alone.values()):.0f} MB together)"
    )
    t_one, t_many = (statistics.median(ready[c]) for c in configs)
    print(f"start-up grows by {t_many - t_one:+.2f} s ({t_many / t_one:.2f}x)")


if __name__ == "__main__":
    main()
