"""Inside the REST service: where a one-sample JSON ``/predict`` spends its time, and BentoML's
adaptive batching against a plain endpoint.

- ``--profile``: the phases of a one-sample JSON ``/predict`` in this process (parsing,
  validation, onnxruntime on one thread, answer encoding), median of 300 calls each;
- ``--batching``: serves ``benchmarks/serving_batching_probe.py`` on a free port and loads its
  ``/plain`` and ``/batched`` endpoints from 1 and 16 clients.

    .venv/bin/python benchmarks/bench_serving_profile.py [--model DIR] --profile --batching
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from serving_load import REPO, best_ms, json_body, load, microstructures, ready

from microstrain.hardware import cpu_description
from microstrain.surrogate import SurrogateModel
from serving.local_server import free_port, stop

ONE_SAMPLE = microstructures(1)


@contextlib.contextmanager
def probe_server(model: Path, log: Path) -> Iterator[int]:
    """The batching probe (a BentoML service of its own, not ``microstrain serve``) on a free
    port until the block ends; yields the port."""
    port = free_port()
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving_batching_probe:BatchingProbe"]
    cmd += ["--port", str(port), "--host", "127.0.0.1", "--working-dir", "benchmarks"]
    env = {**os.environ, "MICROSTRAIN_MODEL": str(model), "PYTHONPATH": str(REPO)}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
        )
    try:
        deadline = time.monotonic() + 180
        while not ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the probe did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield port
    finally:
        stop(proc)


def probe_batching(model: Path, tmp: Path, requests: int, clients: list[int]) -> None:
    """benchmarks/serving_batching_probe.py: BentoML's adaptive batching vs a plain endpoint."""
    with probe_server(model, tmp / "probe.log") as port:
        body = json.dumps({"E": ONE_SAMPLE.tolist()}).encode()
        for endpoint in ("plain", "batched"):
            for c in clients:
                s = load(port, f"/{endpoint}", body, "application/json", requests, c)
                print(
                    f"probe /{endpoint:8s} {c:3d} clients: p50 {s['p50']:.2f} ms, "
                    f"p99 {s['p99']:.2f} ms, {s['rps']:.0f} req/s"
                )


def profile_json_predict(model_dir: Path, threads: int) -> None:
    """Where a one-sample JSON /predict spends its time inside the service (this process)."""
    os.environ.setdefault("MICROSTRAIN_MODEL", str(model_dir))
    from serving import validation
    from serving.answers import json_bytes
    from serving.service import PredictInput

    body = json_body(microstructures(1))
    small = SurrogateModel.load(model_dir, intra_op_threads=1)
    parsed = PredictInput.model_validate_json(body)
    e = validation.microstructures(parsed.E, None).youngs_modulus
    strain = small.predict(e)
    answer = {"strain": strain, "channels": ["eps_xx", "eps_yy", "gamma_xy"], "warnings": []}
    phases = {
        "JSON parsing (pydantic-core)": lambda: PredictInput.model_validate_json(body),
        "validation + numpy conversion": lambda: validation.microstructures(parsed.E, None),
        "onnxruntime (1 thread)": lambda: small.predict(e),
        "answer encoding (json_bytes)": lambda: json_bytes(answer),
        "for comparison: json.dumps(tolist)": lambda: json.dumps({"strain": strain.tolist()}),
    }
    print("\nOne-sample JSON /predict inside the service (median of 300 calls, ms):")
    for name, fn in phases.items():
        print(f"  {name:38s} {best_ms(fn, 300):7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--profile", action="store_true", help="phases of a JSON /predict")
    parser.add_argument("--batching", action="store_true", help="adaptive batching vs plain")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", default="1,16", help="comma-separated client counts")
    args = parser.parse_args()
    if not (args.profile or args.batching):
        parser.error("give --profile and/or --batching")
    model = args.model.resolve()
    print(f"{cpu_description()}; model {model}")
    if args.profile:
        profile_json_predict(model, 1)
    if args.batching:
        clients = [int(c) for c in args.clients.split(",")]
        probe_batching(model, Path(tempfile.mkdtemp(prefix="bench-probe-")), args.requests, clients)


if __name__ == "__main__":
    main()
