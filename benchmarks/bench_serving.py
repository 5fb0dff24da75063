"""Load test of the REST service on loopback: latency, throughput and memory, beside the model.

Starts ``microstrain serve`` on a free port and measures, in one run on one machine:

- the model alone (``SurrogateModel`` in this process, the threads a worker uses): one sample,
  and samples/s of a batch of 512, the reference for the service's batch throughput;
- one-sample requests from 1 and 16 concurrent clients: JSON ``/predict`` (E map, fiber mask)
  and binary ``/predict_npy``: p50, p99, requests/s;
- batches of 512: samples/s of JSON ``/predict`` and ``/predict_npy``, and the share of the
  model's own throughput that ``/predict_npy`` keeps;
- the worker's resident memory after the batches;
- ``--profile``: where a one-sample JSON ``/predict`` spends its time inside the service.

Clients are ``http.client`` keep-alive connections (the standard library's, lighter than httpx)
in threads of this process; they share the machine with the server. ``--source DIR`` serves
another checkout (e.g. ``git archive`` of an older commit) with this script, so that before and
after come from the same measurement; rows that checkout cannot serve print ``—``.

Reliability (docs/serving.md): ``--soak SECONDS`` (moderate mixed load, worker memory over
time), ``--kill`` (SIGKILL a worker, time until it answers again), ``--flood`` (20 concurrent
``/verify`` against a queue of 4, ``/predict`` latency meanwhile), ``--fuzz`` (schemathesis on
every route). Everything runs on 127.0.0.1 and stops its server.

    .venv/bin/python benchmarks/bench_serving.py [--model DIR] [--requests 300] [--profile]
    .venv/bin/python benchmarks/bench_serving.py --soak 600 | --kill | --flood | --fuzz
    .venv/bin/python benchmarks/bench_serving.py --before . --before-model OLD_MODEL_DIR  # models
    .venv/bin/python benchmarks/bench_serving.py --before . --now-env MICROSTRAIN_SMALL_THREADS=2

``--batching`` also starts benchmarks/serving_batching_probe.py and compares BentoML's adaptive
batching with a plain endpoint. Without ``models/default`` a stand-in graph is used (6 convolutions
of 16 channels, no torch) and the table says so.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from microstrain.hardware import cpu_description  # noqa: E402
from microstrain.surrogate import SurrogateModel, default_model_dir  # noqa: E402

BATCH = 512


# --- the server ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[int]:
    """Run ``cmd`` (which takes ``--port``) until the block ends; yields the arbiter's pid."""
    port = int(cmd[cmd.index("--port") + 1])
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
    try:
        wait_ready(port, proc, log)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_ready(port: int, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:] if log else ''}")
        if ready(port):
            return
        time.sleep(0.2)
    raise SystemExit("server did not become ready in 180 s")


def ready(port: int) -> bool:
    try:
        return request(port, "GET", "/readyz", timeout=2)[0] == 200
    except OSError:
        return False


def request(
    port: int, method: str, path: str, body: bytes | None = None, ctype: str = "", timeout=60
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, {"content-type": ctype} if ctype else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def workers(arbiter: int) -> list[psutil.Process]:
    """The BentoML worker processes under the arbiter (the service runs in these)."""
    found = []
    for p in psutil.Process(arbiter).children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a killed worker may linger as a zombie
            if p.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker" in " ".join(
                p.cmdline()
            ):
                found.append(p)
    return found


def rss_mb(arbiter: int) -> float:
    return sum(p.memory_info().rss for p in workers(arbiter)) / 2**20


# --- load ---------------------------------------------------------------------------------------
def load(port: int, path: str, body: bytes | None, ctype: str, requests: int, clients: int) -> dict:
    """``requests`` POSTs (GETs without a body) over ``clients`` keep-alive connections ->
    p50/p99 ms, requests/s."""
    method = "GET" if body is None else "POST"
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def run(count: int) -> list[float]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"content-type": ctype} if ctype else {}
        times = []
        try:
            for _ in range(count):
                t0 = time.perf_counter()
                conn.request(method, path, body, headers)
                response = conn.getresponse()
                response.read()
                times.append(time.perf_counter() - t0)
                if response.status != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status}")
        finally:
            conn.close()
        return times

    run(min(5, requests))  # warm: ORT, the connection, the code paths
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = [t for part in pool.map(run, per_client) for t in part]
    wall = time.perf_counter() - start
    ms = np.asarray(times) * 1e3
    return {"p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99), "rps": requests / wall}


def microstructures(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random E maps [n, 1, 32, 32] MPa, fiber fraction about 0.35 (in the training range)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, 1, 32, 32)) < 0.35, 85000.0, 3000.0).astype(np.float32)


def json_body(e: np.ndarray, field: str = "E") -> bytes:
    data = e if field == "E" else (e > 10000).astype(int)
    return json.dumps({field: data.tolist()}).encode()


def npy_body(e: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, e)
    return buf.getvalue()


# --- the measurements ---------------------------------------------------------------------------
def model_alone(model_dir: Path, threads: int) -> dict[str, float]:
    """The model in this process: one sample (1 and ``threads`` threads), batch of 512."""
    one = microstructures(1)
    batch = microstructures(BATCH, seed=1)
    out: dict[str, float] = {}
    for n_threads in sorted({1, threads}):
        model = SurrogateModel.load(model_dir, intra_op_threads=n_threads)
        out[f"one_ms_{n_threads}"] = best_ms(partial(model.predict, one), 200)
    big = SurrogateModel.load(model_dir, intra_op_threads=threads)
    for label, chunk in (("whole", None), ("chunks", 64)):
        seconds = best_ms(partial(big.predict, batch, batch_size=chunk), 3) / 1e3
        out[f"batch_sps_{label}"] = BATCH / seconds
    return out


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after two warm-up calls, in ms."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


ONE_SAMPLE = microstructures(1)
CASES: list[tuple[str, str, bytes | None, str]] = [
    ("GET /livez (the HTTP stack alone)", "/livez", None, ""),
    ("/predict (E, JSON)", "/predict", json_body(ONE_SAMPLE), "application/json"),
    (
        "/predict (fiber_mask, JSON)",
        "/predict",
        json_body(ONE_SAMPLE, "fiber_mask"),
        "application/json",
    ),
    ("/predict_npy (E, float32)", "/predict_npy", npy_body(ONE_SAMPLE), "application/octet-stream"),
]


def served(port: int, path: str, body: bytes | None, ctype: str) -> bool:
    return request(port, "GET" if body is None else "POST", path, body, ctype)[0] != 404


def one_client_interleaved(ports: dict[str, int], requests: int) -> dict[tuple[str, str], dict]:
    """Every case of a server, one request each in turn, ``requests`` rounds (the machine's load
    drifts, so its rows see the same conditions); then the next server. Servers are not mixed:
    the old one's onnxruntime threads keep spinning a while after each of its requests and
    would slow the next request to the other. -> (server, case) -> p50/p99 ms, req/s."""
    out: dict[tuple[str, str], dict] = {}
    for server, port in ports.items():
        out.update(one_client_cases(server, port, requests))
    return out


def one_client_cases(server: str, port: int, requests: int) -> dict[tuple[str, str], dict]:
    ports = {server: port}
    pairs = [(server, case) for case in CASES if served(port, case[1], case[2], case[3])]
    conns = {
        server: http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for server, port in ports.items()
    }
    times: dict[tuple[str, str], list[float]] = {(srv, c[0]): [] for srv, c in pairs}
    for round_ in range(requests + 5):
        for server, (name, path, body, ctype) in pairs:
            conn = conns[server]
            t0 = time.perf_counter()
            conn.request(
                "GET" if body is None else "POST",
                path,
                body,
                {"content-type": ctype} if ctype else {},
            )
            response = conn.getresponse()
            response.read()
            if round_ >= 5:  # the first rounds warm the paths
                times[(server, name)].append(time.perf_counter() - t0)
            if response.status != 200:
                raise RuntimeError(f"{server} {path}: HTTP {response.status}")
    for conn in conns.values():
        conn.close()
    out = {}
    for key, values in times.items():
        ms = np.asarray(values) * 1e3
        out[key] = {
            "p50": np.percentile(ms, 50),
            "p99": np.percentile(ms, 99),
            "rps": len(ms) / ms.sum() * 1e3,
        }
    return out


def batch_rounds(ports: dict[str, int], model: SurrogateModel, rounds: int) -> dict[str, list]:
    """Samples/s of a batch of 512: the model in this process (the faster of the whole batch at
    once and chunks of 64), then each server's JSON and .npy routes, in turn for ``rounds``
    rounds (the same load for all)."""
    batch = microstructures(BATCH, seed=1)
    bodies = {
        "JSON": (json_body(batch), "/predict", "application/json"),
        "npy": (npy_body(batch), "/predict_npy", "application/octet-stream"),
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
        best = 0.0  # the model's own best: the whole batch at once, or in chunks of 64
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


def probe_batching(env: dict[str, str], model: Path, tmp: Path, requests: int, clients) -> None:
    """benchmarks/serving_batching_probe.py: BentoML's adaptive batching vs a plain endpoint."""
    port = free_port()
    probe = [sys.executable, "-m", "bentoml", "serve", "serving_batching_probe:BatchingProbe"]
    probe += ["--port", str(port), "--host", "127.0.0.1", "--working-dir", "benchmarks"]
    env_probe = {**env, "MICROSTRAIN_MODEL": str(model), "PYTHONPATH": str(REPO)}
    with serving(probe, env_probe, REPO, tmp / "probe.log"):
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


# --- reliability ------------------------------------------------------------------------------
def soak(port: int, arbiter: int, seconds: float, warmup: float = 60.0) -> None:
    """Moderate mixed load: 4 clients, each a request then a 20 ms pause. The worker's memory
    is sampled every 30 s; "before" is taken after ``warmup`` seconds of the same load (thread
    pools and onnxruntime's arena reach their working size), "after" at the end."""
    bodies = [
        ("/predict", json_body(microstructures(1)), "application/json"),
        (
            "/predict",
            json.dumps({"E": microstructures(8).tolist(), "quantities": True}).encode(),
            "application/json",
        ),
        ("/predict_npy", npy_body(microstructures(64)), "application/octet-stream"),
        ("/predict", b'{"E": [[1]]}', "application/json"),  # a 422, also part of real traffic
    ]
    start = time.monotonic()
    end = start + warmup + seconds
    counts: dict[int, int] = {}
    lock = threading.Lock()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        k = i
        while time.monotonic() < end:
            path, body, ctype = bodies[k % len(bodies)]
            k += 1
            conn.request("POST", path, body, {"content-type": ctype})
            response = conn.getresponse()
            response.read()
            if time.monotonic() > start + warmup:
                with lock:
                    counts[response.status] = counts.get(response.status, 0) + 1
            time.sleep(0.02)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    samples = []
    while time.monotonic() < end:
        time.sleep(min(30.0, max(0.0, end - time.monotonic())))
        samples.append((time.monotonic() - start, rss_mb(arbiter)))
    for t in threads:
        t.join()
    measured = [(t, m) for t, m in samples if t >= warmup - 1]
    before, after = measured[0][1], rss_mb(arbiter)
    print(
        f"soak {seconds:.0f} s after {warmup:.0f} s of warm-up: {sum(counts.values())} "
        f"requests, statuses {counts}"
    )
    print("worker RSS MB: " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in samples))
    print(
        f"worker RSS after warm-up {before:.0f} MB, at the end {after:.0f} MB "
        f"({after / before - 1:+.1%})"
    )


def kill_worker(port: int, arbiter: int, rounds: int = 3) -> None:
    """SIGKILL a worker; seconds until /predict answers again (BentoML starts a new one; with
    more workers the others answer meanwhile), and until the worker count is whole again."""
    body = json_body(microstructures(1))
    count = len(workers(arbiter))
    for i in range(rounds):
        victim = workers(arbiter)[0]
        os.kill(victim.pid, signal.SIGKILL)
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(port, "POST", "/predict", body, "application/json", 5)[0] == 200:
                    break
            time.sleep(0.05)
        answering = time.monotonic() - t0
        while len([p for p in workers(arbiter) if p.pid != victim.pid]) < count:
            time.sleep(0.05)
        while not ready(port):
            time.sleep(0.05)
        print(
            f"kill -9 #{i + 1} of worker {victim.pid}: /predict answered again after "
            f"{answering:.1f} s; {count} worker(s) again after {time.monotonic() - t0:.1f} s"
        )


def flood(port: int, n: int = 20) -> None:
    """``n`` concurrent one-sample /verify; /predict median latency idle and meanwhile."""
    mask = (microstructures(1, seed=3)[0, 0] > 10000).astype(int)
    verify_body = json.dumps({"fiber_mask": mask.tolist()}).encode()
    predict_body = json_body(microstructures(1))
    idle = load(port, "/predict", predict_body, "application/json", 50, 1)["p50"]
    statuses: list[int] = []
    busy: list[float] = []
    done = threading.Event()

    def meanwhile() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            request(port, "POST", "/predict", predict_body, "application/json")
            busy.append(1e3 * (time.perf_counter() - t0))
            time.sleep(0.01)

    watcher = threading.Thread(target=meanwhile)
    watcher.start()
    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        statuses = list(
            pool.map(
                lambda _: request(port, "POST", "/verify", verify_body, "application/json", 600)[0],
                range(n),
            )
        )
    wall = time.monotonic() - t0
    done.set()
    watcher.join()
    summary = {s: statuses.count(s) for s in sorted(set(statuses))}
    during = statistics.median(busy)
    print(
        f"flood of {n} /verify: statuses {summary} in {wall:.1f} s; /predict p50 idle "
        f"{idle:.1f} ms, during the flood {during:.1f} ms ({len(busy)} requests)"
    )


def fuzz(port: int, examples: int, workdir: Path) -> None:
    """schemathesis on every operation of /docs.json; status codes per operation."""
    report = workdir / "fuzz.ndjson"
    cmd = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"http://127.0.0.1:{port}/docs.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(examples),
        "--seed",
        "1",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, check=False)
    counts: dict[str, dict[int, int]] = {}
    for line in report.read_text().splitlines():
        for event in json.loads(line).values():
            recorder = event.get("recorder") if isinstance(event, dict) else None
            if not recorder:
                continue
            for interaction in recorder.get("interactions", {}).values():
                if interaction.get("response"):
                    code = int(interaction["response"]["status_code"])
                    per = counts.setdefault(recorder["label"], {})
                    per[code] = per.get(code, 0) + 1
    print(f"schemathesis (exit {run.returncode}), {examples} examples per operation:")
    for label, per in sorted(counts.items()):
        fives = sum(v for k, v in per.items() if k >= 500)
        print(f"  {label:22s} {sum(per.values()):5d} requests, 5xx: {fives}, statuses {per}")


# --- main ---------------------------------------------------------------------------------------
def setting(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` of ``--before-env``/``--now-env``."""
    name, sep, value = text.partition("=")
    if not (sep and name):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory")
    parser.add_argument("--source", type=Path, default=REPO, help="checkout to serve")
    parser.add_argument(
        "--before", type=Path, default=None, help="also serve this checkout, measured in turn"
    )
    parser.add_argument(
        "--before-model",
        type=Path,
        default=None,
        help="the model the --before server serves (default: --model), e.g. the previous default",
    )
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
    parser.add_argument("--clients", default="1,16", help="comma-separated client counts")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="phases of a JSON /predict")
    parser.add_argument("--batching", action="store_true", help="also probe adaptive batching")
    parser.add_argument("--soak", type=float, default=0, help="seconds of moderate load")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the worker 3 times")
    parser.add_argument("--flood", action="store_true", help="20 concurrent /verify, queue 4")
    parser.add_argument("--fuzz", type=int, default=0, help="schemathesis examples per route")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model = (args.model or default_model_dir()).resolve()
    label = str(model)
    if not (model / "model.onnx").is_file():
        sys.path.insert(0, str(REPO / "tests"))
        from support.models import make_model_dir

        model = make_model_dir(tmp / "standin", extra_convs=6)
        label = "stand-in (6 conv layers x 16 ch, no models/default yet)"
    source = args.source.resolve()
    env = {
        **os.environ,
        "MICROSTRAIN_VERIFY_CONCURRENCY": "1",
        "MICROSTRAIN_VERIFY_QUEUE": "4",
    }
    threads = max(1, len(os.sched_getaffinity(0)) // args.workers)
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"model: {label}; {cpu_description()}; load average {load_avg}")
    shown = f"{source}" + (f" (now) and {args.before} (before)" if args.before else "")
    if args.before_model:
        shown += f"; the before server serves {args.before_model}"
    print(f"served from {shown}; {args.workers} worker(s); loopback HTTP, http.client clients\n")

    settings = {server: dict(getattr(args, f"{server}_env")) for server in ("before", "now")}
    for server, given in settings.items():
        if given:
            print(f"{server} server settings: {given}")
    reliability = args.soak or args.kill or args.flood or args.fuzz
    sources = {"now": source}
    if args.before is not None:
        sources = {"before": args.before.resolve(), "now": source}
    ports = {server: free_port() for server in sources}
    with contextlib.ExitStack() as stack:
        arbiters = {}
        for server, checkout in sources.items():
            cmd = [sys.executable, "-m", "microstrain_cli", "serve", "--port", str(ports[server])]
            served_model = args.before_model if server == "before" and args.before_model else model
            cmd += ["--workers", str(args.workers), "--model", str(Path(served_model).resolve())]
            path = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
            env_server = {**env, "PYTHONPATH": path, "MICROSTRAIN_STATE_DIR": str(tmp / server)}
            env_server.update(settings[server])
            log = tmp / f"serve-{server}.log"
            arbiters[server] = stack.enter_context(serving(cmd, env_server, checkout, log))
        port, arbiter = ports["now"], arbiters["now"]
        if args.soak:
            soak(port, arbiter, args.soak)
        if args.flood:
            flood(port)
        if args.fuzz:
            fuzz(port, args.fuzz, tmp)
        if args.kill:
            kill_worker(port, arbiter)
        if reliability:
            return
        one = one_client_interleaved(ports, args.requests)
        many = {}
        for server, p in ports.items():
            for name, path, body, ctype in CASES:
                if body is not None and served(p, path, body, ctype):
                    for c in (c for c in clients if c > 1):
                        many[(server, name, c)] = load(p, path, body, ctype, args.requests, c)
        alone = model_alone(model, threads)
        big = SurrogateModel.load(model, intra_op_threads=threads)
        rates = batch_rounds(ports, big, args.rounds)
        memory = {server: rss_mb(a) for server, a in arbiters.items()}

    print(
        f"{'server':7s} {'endpoint':34s} {'clients':>7s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'req/s':>7s}"
    )
    for server in sources:
        for name, _, body, _ in CASES:
            for c in clients if body is not None else [1]:
                s = one.get((server, name)) if c == 1 else many.get((server, name, c))
                cells = (
                    ("—", "—", "—")
                    if s is None
                    else (f"{s['p50']:.2f}", f"{s['p99']:.2f}", f"{s['rps']:.0f}")
                )
                print(f"{server:7s} {name:34s} {c:7d} {cells[0]:>8s} {cells[1]:>8s} {cells[2]:>7s}")
    print(
        f"\nthe model alone ({threads} threads): one sample {alone[f'one_ms_{threads}']:.2f} ms"
        f" ({alone['one_ms_1']:.2f} ms on 1 thread); batch of {BATCH}: "
        f"{alone['batch_sps_whole']:.0f} samples/s whole, {alone['batch_sps_chunks']:.0f} in "
        f"chunks of 64"
    )
    print(
        f"batches of {BATCH}, {args.rounds} interleaved rounds, median samples/s "
        f"(share of the model's own in the same round):"
    )
    print(f"  {'the model alone, in this process':44s} {statistics.median(rates['model']):7.0f}")
    for name, values in rates.items():
        if name != "model":
            share = statistics.median(v / m for v, m in zip(values, rates["model"], strict=True))
            print(f"  {name:44s} {statistics.median(values):7.0f}  ({share:.0%})")
    for server, mb in memory.items():
        print(f"worker RSS after the batches ({server}): {mb:.0f} MB")
    if args.batching:
        probe_batching(env, model, tmp, args.requests, clients)
    if args.profile:
        profile_json_predict(model, threads)


if __name__ == "__main__":
    main()
