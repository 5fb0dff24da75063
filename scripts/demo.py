"""`make demo`: the whole pipeline end to end on small defaults, as a user would run it.

generate (refined k=4, the default truth) -> inspect -> train (res-unet, a couple of minutes on
CPU; checkpoints + run record) -> export (ONNX + card, from the checkpoint and its record alone) ->
tau (breakeven report) -> serve on a free port, one request, stop.
Everything goes to results/demo/ (gitignored); models/default is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from microstrain.dataset import load_samples, read_info
from serving.local_server import ServerFailed, running_server

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OUT = Path("results/demo")
DATA = OUT / "demo_k4.h5"
MODEL = OUT / "model"
N_SAMPLES = int(os.environ.get("DEMO_SAMPLES", "512"))
EPOCHS = int(os.environ.get("DEMO_EPOCHS", "24"))


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def microstrain(*args: str, env: dict[str, str] | None = None) -> str:
    """Run `microstrain ARGS`, echo its output, stop the demo on failure."""
    cmd = [str(BIN / "microstrain"), *args]
    print("$ microstrain " + " ".join(args), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    shown = [line for line in proc.stdout.splitlines() if line.strip()]
    print("\n".join(shown[-12:]))
    if proc.returncode != 0:
        sys.exit(f"demo stopped: `microstrain {args[0]}` failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def http(url: str, body: dict | None = None, timeout: float = 30.0) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def serve_one_request(model_dir: Path) -> None:
    env = {"MICROSTRAIN_STATE_DIR": str(ROOT / OUT / "state")}
    print(f"$ microstrain serve --port <free port> --model {model_dir}", flush=True)
    try:
        server = running_server([model_dir], env, ROOT / OUT / "serve.log", start_timeout_s=90)
        with server as local:
            ask(local.url)
    except ServerFailed:
        sys.exit(f"demo stopped: the service did not become ready (see {OUT}/serve.log)")
    print("service stopped")


def ask(base: str) -> None:
    """One /predict of the dataset's last sample against its FE strain, then /breakeven."""
    last = np.array([read_info(ROOT / DATA).n - 1])
    samples = load_samples(ROOT / DATA, indices=last)  # strain for ū = 0.1
    youngs_modulus = samples.youngs_modulus[0]  # [1, 32, 32] MPa
    truth = samples.strain[0]  # [3, 32, 32]
    t0 = time.perf_counter()
    answer = http(f"{base}/predict", {"E": youngs_modulus[0].tolist(), "applied_strain": 0.1})
    latency_ms = 1000 * (time.perf_counter() - t0)
    strain = np.asarray(answer["strain"], dtype=np.float32)  # [1, 3, 32, 32]
    err = np.linalg.norm(strain[0] - truth) / np.linalg.norm(truth)
    print(f"POST {base}/predict -> strain {list(strain.shape)} in {latency_ms:.1f} ms")
    print(f"  channels {answer['channels']}, model {answer['model']['name']}")
    print(f"  mean eps_xx {strain[0, 0].mean():.4f} (applied 0.1); warnings {answer['warnings']}")
    print(f"  relative L2 against the FE solution of that sample: {err:.1%}")
    be = http(f"{base}/breakeven")
    print(f"GET {base}/breakeven -> {json.dumps(be)[:200]}")


def main() -> None:
    os.chdir(ROOT)
    OUT.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    step(f"1/5 generate {N_SAMPLES} microstructures and their FE strain (refined k=4)")
    microstrain("generate", "-n", str(N_SAMPLES), "-o", str(DATA), "--seed", "7", "--no-progress")
    microstrain("inspect", str(DATA), "--png", str(OUT / "dataset.png"))

    step(f"2/5 train res-unet for {EPOCHS} epochs (small: the shipped model trains far longer)")
    out = microstrain(
        "train", "--config", "configs/res-unet.yaml", "--data.path", str(DATA),
        "--name", "demo", "--runs_dir", str(OUT / "runs"), "--trainer.max_epochs", str(EPOCHS),
        "--trainer.enable_progress_bar", "false", "--images.n_samples", "0",
    )  # fmt: skip
    ckpt = next(
        line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("best checkpoint: ")
    )

    step("3/5 export to ONNX with its card (parity-checked against PyTorch; metrics and τ)")
    microstrain("export", ckpt, "-o", str(MODEL), "--name", "demo", "--force")

    step("4/5 breakeven report")
    microstrain("tau", str(MODEL))

    step("5/5 serve the model on a free port, send one request, stop")
    serve_one_request(MODEL)

    print(f"\ndemo finished in {time.perf_counter() - t_start:.0f} s. Artifacts:")
    for label, path in [
        ("dataset", DATA),
        ("dataset picture", OUT / "dataset.png"),
        ("training run (TensorBoard)", OUT / "runs" / "demo"),
        ("best checkpoint", Path(ckpt)),
        ("run record", Path(ckpt).parent.parent / "run.json"),
        ("exported model", MODEL / "model.onnx"),
        ("model card", MODEL / "card.json"),
        ("breakeven report", MODEL / "tau.md"),
        ("breakeven plot", MODEL / "tau.png"),
    ]:
        print(f"  {label:28s} {path}")


if __name__ == "__main__":
    main()
