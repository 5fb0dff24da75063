"""Latency and throughput of the REST service on loopback, beside the model alone.

Starts ``microstrain serve`` (:mod:`serving.local_server`) on a free port with the uniaxial model
and, where there is one, the periodic model, and measures in one run on one machine:

- one-sample requests from one client, every row in turn (the machine's load drifts, so the rows
  see the same conditions): JSON ``/predict`` (E map, fiber mask) and binary ``/predict_npy`` of
  the default model, and of the periodic model JSON (a macro stress: the load's fields, C_eff and
  the constants) and ``.npy`` (its unit cases): p50, p99, requests/s, and the periodic p50 over
  the default's (target ≤ 2×);
- the same one-sample requests from 16 concurrent clients;
- batches of 512: samples/s of JSON ``/predict`` and ``/predict_npy`` and their share of the
  model's own throughput in this process;
- the workers' resident memory after the batches.

``--before CHECKOUT`` also serves another checkout (e.g. ``git archive`` of an older commit) with
this script and measures it in turn, so that before and after come from the same run; rows that
checkout cannot serve print ``—``. Start-up and memory per model: ``bench_serving_models.py``;
soak, kill and fuzz: ``bench_serving_reliability.py``; inside a request and adaptive batching:
``bench_serving_profile.py``; FE checks: ``bench_verify.py``.

    .venv/bin/python benchmarks/bench_serving.py [--model DIR] [--periodic DIR] [--requests 300]
    .venv/bin/python benchmarks/bench_serving.py --before OLD_CHECKOUT --before-model OLD_MODEL
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from serving_load import (
    BATCH,
    JSON,
    NPY,
    REPO,
    Case,
    best_ms,
    interleaved,
    json_body,
    load,
    microstructures,
    npy_body,
    port_of,
    request,
    rss_mb,
    served,
)

from microstrain.hardware import cpu_description
from microstrain.surrogate import SurrogateModel
from serving.local_server import running_server

ONE = microstructures(1)
SHEAR = [0.0, 0.0, 50.0]  # MPa: the periodic rows' load
DEFAULT_CASES: list[Case] = [
    ("GET /livez (the HTTP stack alone)", "/livez", None, ""),
    ("default /predict (E, JSON)", "/predict", json_body(ONE), JSON),
    ("default /predict (fiber_mask, JSON)", "/predict", json_body(ONE, "fiber_mask"), JSON),
    ("default /predict_npy (E, float32)", "/predict_npy", npy_body(ONE), NPY),
]
PERIODIC_CASES: list[Case] = [
    (
        "periodic /predict (macro stress, JSON)",
        "/predict",
        json_body(ONE, model="periodic", macro_stress=SHEAR),
        JSON,
    ),
    ("periodic /predict_npy (unit cases)", "/predict_npy?model=periodic", npy_body(ONE), NPY),
]


def setting(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` of ``--before-env``/``--now-env``."""
    name, sep, value = text.partition("=")
    if not (sep and name):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def model_alone(model_dir: Path, threads: int) -> dict[str, float]:
    """The model in this process: one sample (1 and ``threads`` threads), batch of 512."""
    batch = microstructures(BATCH, seed=1)
    out: dict[str, float] = {}
    for n_threads in sorted({1, threads}):
        model = SurrogateModel.load(model_dir, intra_op_threads=n_threads)
        out[f"one_ms_{n_threads}"] = best_ms(partial(model.predict, ONE), 200)
    big = SurrogateModel.load(model_dir, intra_op_threads=threads)
    for label, chunk in (("whole", None), ("chunks", 64)):
        seconds = best_ms(partial(big.predict, batch, batch_size=chunk), 3) / 1e3
        out[f"batch_sps_{label}"] = BATCH / seconds
    return out


def batch_rounds(ports: dict[str, int], model: SurrogateModel, rounds: int) -> dict[str, list]:
    """Samples/s of a batch of 512: the model in this process (the faster of the whole batch at
    once and chunks of 64), then each server's JSON and .npy routes, in turn for ``rounds``
    rounds (the same load for all)."""
    batch = microstructures(BATCH, seed=1)
    bodies = {
        "JSON": (json_body(batch), "/predict", JSON),
        "npy": (npy_body(batch), "/predict_npy", NPY),
    }
    routes = [
        (f"{server} {kind}", port, path, body, ctype)
        for server, port in ports.items()
        for kind, (body, path, ctype) in bodies.items()
        if request(port, "POST", path, body, ctype, timeout=300)[0] == 200  # also warms
    ]
    model.predict(batch)
    rates: dict[str, list] = {"model": [], **{name: [] for name, *_ in routes}}
    for _ in range(rounds):
        best = 0.0
        for chunk in (None, 64):
            t0 = time.perf_counter()
            model.predict(batch, batch_size=chunk)
            best = max(best, BATCH / (time.perf_counter() - t0))
        rates["model"].append(best)
        for name, port, path, body, ctype in routes:
            t0 = time.perf_counter()
            request(port, "POST", path, body, ctype, timeout=300)
            rates[name].append(BATCH / (time.perf_counter() - t0))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument(
        "--periodic", type=Path, default=REPO / "models" / "periodic", help="periodic model"
    )
    parser.add_argument("--source", type=Path, default=REPO, help="checkout to serve")
    parser.add_argument("--before", type=Path, default=None, help="also serve this checkout")
    parser.add_argument("--before-model", type=Path, default=None, help="the --before model")
    for server in ("before", "now"):
        parser.add_argument(
            f"--{server}-env",
            action="append",
            default=[],
            type=setting,
            metavar="NAME=VALUE",
            help=f"a setting of the {server} server only, e.g. MICROSTRAIN_SMALL_THREADS=2",
        )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of batch-512 requests")
    parser.add_argument("--requests", type=int, default=300, help="requests per latency row")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of a row")
    args = parser.parse_args()

    model = args.model.resolve()
    if not (model / "model.onnx").is_file():
        raise SystemExit(f"no model in {model}: give --model (make model builds models/default)")
    periodic = args.periodic.resolve() if (args.periodic / "model.onnx").is_file() else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    threads = max(1, len(os.sched_getaffinity(0)))
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{cpu_description()}; load average {load_avg}; 1 worker; loopback HTTP")
    print(f"models: {model}" + (f" and {periodic} as 'periodic'" if periodic else ""))
    if periodic is None:
        print(f"(no periodic model at {args.periodic}: its rows print —)")
    sources = {"now": (args.source.resolve(), model, dict(args.now_env))}
    if args.before is not None:
        before_model = (args.before_model or model).resolve()
        sources = {"before": (args.before.resolve(), before_model, dict(args.before_env))} | sources
    print()

    one: dict[tuple[str, str], dict] = {}
    many: dict[tuple[str, str], dict] = {}
    ports: dict[str, int] = {}
    memory: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        arbiters = {}
        for server, (checkout, uniaxial, settings) in sources.items():
            path = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
            env = {"PYTHONPATH": path, "MICROSTRAIN_STATE_DIR": str(tmp / server), **settings}
            models = [uniaxial] + ([periodic] if periodic else [])
            local = stack.enter_context(
                running_server(models, env, tmp / f"serve-{server}.log", cwd=checkout)
            )
            ports[server], arbiters[server] = port_of(local.url), local.process.pid
        # one server at a time: the other's onnxruntime threads keep spinning a while after
        # each of its requests and would slow the next request to this one
        for server, port in ports.items():
            cases = [c for c in DEFAULT_CASES + PERIODIC_CASES if served(port, *c[1:])]
            one.update({(server, n): r for n, r in interleaved(port, cases, args.requests).items()})
            for name, path, body, ctype in cases:
                if body is not None and args.clients > 1:
                    many[(server, name)] = load(
                        port, path, body, ctype, args.requests, args.clients
                    )
        alone = model_alone(model, threads)
        big = SurrogateModel.load(model, intra_op_threads=threads)
        rates = batch_rounds(ports, big, args.rounds)
        memory = {server: rss_mb(a) for server, a in arbiters.items()}

    print(
        f"{'server':7s} {'endpoint':40s} {'clients':>7s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'req/s':>7s}"
    )
    for server in sources:
        for name, _, body, _ in DEFAULT_CASES + PERIODIC_CASES:
            rows: list[tuple[int, dict | None]] = [
                (1, one.get((server, name))),
                (args.clients, many.get((server, name))),
            ]
            for clients, row in rows:
                if body is None and clients > 1:
                    continue
                cells = (
                    ("—",) * 3
                    if row is None
                    else (f"{row['p50']:.2f}", f"{row['p99']:.2f}", f"{row['rps']:.0f}")
                )
                print(
                    f"{server:7s} {name:40s} {clients:7d} {cells[0]:>8s} {cells[1]:>8s} "
                    f"{cells[2]:>7s}"
                )
        for kind, periodic_row, default_row in (
            ("JSON", PERIODIC_CASES[0][0], DEFAULT_CASES[1][0]),
            ("npy", PERIODIC_CASES[1][0], DEFAULT_CASES[3][0]),
        ):
            p, d = one.get((server, periodic_row)), one.get((server, default_row))
            if p and d:
                print(
                    f"{server:7s} periodic / default one-sample p50, {kind}: "
                    f"{p['p50'] / d['p50']:.2f}x (target ≤ 2x)"
                )
    print(
        f"\nthe model alone ({threads} threads): one sample {alone[f'one_ms_{threads}']:.2f} ms"
        f" ({alone['one_ms_1']:.2f} ms on 1 thread); batch of {BATCH}: "
        f"{alone['batch_sps_whole']:.0f} samples/s whole, {alone['batch_sps_chunks']:.0f} in "
        f"chunks of 64"
    )
    print(
        f"batches of {BATCH}, {args.rounds} interleaved rounds, median samples/s "
        "(share of the model's own):"
    )
    print(f"  {'the model alone, in this process':44s} {statistics.median(rates['model']):7.0f}")
    for name, values in rates.items():
        if name != "model":
            share = statistics.median(v / m for v, m in zip(values, rates["model"], strict=True))
            print(f"  {name:44s} {statistics.median(values):7.0f}  ({share:.0%})")
    for server, mb in memory.items():
        print(f"workers' RSS after the batches ({server}): {mb:.0f} MB")


if __name__ == "__main__":
    main()
