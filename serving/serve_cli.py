"""Command: serve (BentoML REST service over onnxruntime, SPEC §8)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from microstrain.conventions import DEFAULT_PORT, MODEL_ENV_VAR
from microstrain.errors import MicrostrainError

SERVICE_IMPORT = "serving.service:MicrostrainService"


def serve(
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port to listen on.")] = (
        DEFAULT_PORT
    ),
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help=f"Model directory (model.onnx + card.json); default ${MODEL_ENV_VAR} or "
            "models/default.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the surrogate over HTTP: the web page at /, /predict, /predict_npy, /predict_image,
    /verify, /model, /breakeven (settings: docs/serving.md)."""
    from microstrain.surrogate import SurrogateModel, default_model_dir
    from serving.settings import WORKERS_ENV_VAR, api_token, check_all, intra_op_threads

    if not 0 < port < 65536:
        raise MicrostrainError(f"--port {port} is not a TCP port (1-65535)")
    directory = (model if model is not None else default_model_dir()).resolve()
    # load once here so a missing, broken or tampered model (its sha256 is checked against the
    # card) and a bad setting are one clear line, not a worker traceback
    loaded = SurrogateModel.load(directory, intra_op_threads=1)
    check_all()
    env = dict(os.environ, **{MODEL_ENV_VAR: str(directory), WORKERS_ENV_VAR: str(workers)})
    shown_host = "localhost" if host in ("127.0.0.1", "::1") else host
    token_note = "\nrequests need 'Authorization: Bearer <MICROSTRAIN_API_TOKEN>'"
    print(
        f"microstrain serve: model '{loaded.name}' {loaded.version} ({directory}), "
        f"{workers} worker(s) x {intra_op_threads(workers)} onnxruntime thread(s)\n"
        f"listening on http://{shown_host}:{port}  (web page /, POST /predict, "
        f"/predict_npy, API docs /docs; Ctrl-C stops)" + (token_note if api_token() else ""),
        flush=True,
    )
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE_IMPORT]
    cmd += ["--port", str(port), "--host", host]
    # replace this process: signals (Ctrl-C, SIGTERM from docker) go straight to BentoML
    os.execve(sys.executable, cmd, env)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
